"""Board builds through amaranth-boards with the YoWASP tools."""

import numpy as np
import pytest

from mstbnn.boards.bitstream import BOARDS, build_bitstream, get_board, uart_divisor
from mstbnn.devices import DEVICES
from mstbnn.boards.protocol import format_from_network
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.random import random_dense_network
from mstbnn.errors import UserError
from mstbnn.hw.network import NetworkEngine


@pytest.mark.parametrize("name,device", [("icebreaker", "ice40-up5k"), ("ulx3s", "ecp5-85k"), ("ulx3s-25f", "ecp5-25k")])
def test_boards_carry_known_devices(name, device):
    board = get_board(name)
    assert board.device == device and board.device in DEVICES


def test_unknown_board_lists_the_choices():
    with pytest.raises(UserError, match="unknown board 'arty'.*icebreaker"):
        get_board("arty")


@pytest.mark.parametrize("clock,baud,want", [(12e6, 115200, 104), (25e6, 115200, 217), (25e6, 9600, 2604)])
def test_uart_divisor(clock, baud, want):
    assert uart_divisor(clock, baud) == want


@pytest.mark.parametrize("clock,baud", [(12e6, 4_000_000), (25e6, 3_000_000)])
def test_unreachable_baud_is_refused(clock, baud):
    with pytest.raises(UserError, match="not reachable"):
        uart_divisor(clock, baud)


@pytest.mark.slow
@pytest.mark.parametrize("board_name", ["icebreaker", "ulx3s-25f"])
def test_real_board_build_writes_a_bitstream(tmp_path, board_name):
    rng = np.random.default_rng(0)
    net = schedule_network(random_dense_network(rng, features=16, hidden=(12,), classes=4, bits=5))
    board = BOARDS[board_name]
    out = build_bitstream(NetworkEngine(net), format_from_network(net), board, tmp_path)
    assert out.is_file() and out.stat().st_size > 10_000
    assert "PASS" in (tmp_path / "mstbnn.tim").read_text()
