"""Shared fixtures for the nn tests: the embedded digits data, loaded once."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def digits():
    from mstbnn.nn.data import load_digits

    return load_digits()
