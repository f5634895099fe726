"""Device table."""

import pytest

from mstbnn.devices import DEVICES, get_device
from mstbnn.errors import UserError

ISSUE_DEVICES = ["ice40-up5k", "ice40-hx8k", "ecp5-25k", "ecp5-45k", "ecp5-85k"]


@pytest.mark.parametrize("name", ISSUE_DEVICES)
def test_every_device_of_the_issue_is_there(name):
    d = get_device(name)
    assert d.name == name and d.family in ("ice40", "ecp5")
    assert d.luts > 0 and d.ffs > 0 and d.io_pins > 0
    assert d.nextpnr_tool == f"yowasp-nextpnr-{d.family}"


def test_unknown_device_is_a_user_error_listing_the_choices():
    with pytest.raises(UserError, match="unknown device 'xc7a35t'.*ice40-up5k"):
        get_device("xc7a35t")


def test_capacities_grow_with_the_ecp5_size():
    sizes = [DEVICES[n].luts for n in ("ecp5-12k", "ecp5-25k", "ecp5-45k", "ecp5-85k")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
