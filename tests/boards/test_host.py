"""Host side over a pseudo-terminal, with a software board on the other end."""

import os
import threading

import numpy as np
import pytest

from mstbnn.boards.host import SerialPort, classify
from mstbnn.boards.protocol import format_from_network
from mstbnn.compiler.compile import schedule_network
from mstbnn.compiler.execute import run
from mstbnn.compiler.random import random_conv_network, random_dense_network, random_inputs
from mstbnn.errors import UserError


class FakeBoard(threading.Thread):
    """Reads whole images from the pty master and answers with ``answer(image_bytes, index)``."""

    def __init__(self, master: int, image_bytes: int, answer):
        super().__init__(daemon=True)
        self.master, self.image_bytes, self.answer = master, image_bytes, answer
        self.received = []

    def run(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= self.image_bytes:
                image, buf = buf[: self.image_bytes], buf[self.image_bytes:]
                self.received.append(image)
                reply = self.answer(image, len(self.received) - 1)
                if reply is not None:
                    os.write(self.master, bytes([reply]))


def decode(fmt, data):
    """Inverse of the wire encoding: the image a board would assemble."""
    n = fmt.bytes_per_value
    vals = [int.from_bytes(data[i:i + n], "little") & ((1 << fmt.value_width) - 1) for i in range(0, len(data), n)]
    if fmt.signed:
        vals = [v - (1 << fmt.value_width) if v >> (fmt.value_width - 1) else v for v in vals]
    vals = np.asarray(vals, dtype=np.int64).reshape(-1, fmt.values_per_beat)
    if fmt.is_conv:
        c, h, w = fmt.shape
        return vals.reshape(h, w, c).transpose(2, 0, 1)
    return vals.reshape(fmt.shape)


NETS = {
    "dense": lambda rng: random_dense_network(rng, features=10, hidden=(8,), classes=4, bits=12, signed=True,
                                              input_mode="int"),
    "conv": lambda rng: random_conv_network(rng, input_shape=(3, 4, 4), convs=((4, 3, 1, 0, False),), classes=3),
}


@pytest.mark.parametrize("kind", list(NETS))
def test_classify_round_trip_through_a_pty(kind):
    rng = np.random.default_rng(11)
    net = schedule_network(NETS[kind](rng))
    fmt = format_from_network(net)
    images = random_inputs(net, rng, 7)
    master, slave = os.openpty()
    board = FakeBoard(master, fmt.bytes_per_image, lambda data, i: int(run(net, decode(fmt, data)[None]).classes[0]))
    board.start()
    with SerialPort(os.ttyname(slave), 115200) as port:
        got = classify(port, fmt, images, timeout=2.0)
    os.close(slave)
    assert got.tolist() == run(net, images).classes.tolist()
    # the board saw exactly the images, in the documented byte order
    assert [decode(fmt, d).tolist() for d in board.received] == images.tolist()
    os.close(master)


def test_silent_board_is_a_user_error():
    rng = np.random.default_rng(1)
    net = schedule_network(NETS["dense"](rng))
    fmt = format_from_network(net)
    master, slave = os.openpty()
    FakeBoard(master, fmt.bytes_per_image, lambda data, i: None).start()
    with SerialPort(os.ttyname(slave), 115200) as port:
        with pytest.raises(UserError, match="no answer .* image 0"):
            classify(port, fmt, random_inputs(net, rng, 2), timeout=0.2)
    os.close(slave)
    os.close(master)


def test_class_out_of_range_is_a_user_error():
    rng = np.random.default_rng(2)
    net = schedule_network(NETS["dense"](rng))
    fmt = format_from_network(net)
    master, slave = os.openpty()
    FakeBoard(master, fmt.bytes_per_image, lambda data, i: 200).start()
    with SerialPort(os.ttyname(slave), 115200) as port:
        with pytest.raises(UserError, match="class 200 .* 4 classes"):
            classify(port, fmt, random_inputs(net, rng, 1), timeout=1.0)
    os.close(slave)
    os.close(master)


def test_ports_that_are_not_serial_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot open serial port"):
        SerialPort(str(tmp_path / "ttyNOPE"))
    plain = tmp_path / "file"
    plain.write_bytes(b"")
    with pytest.raises(UserError, match="not a serial port"):
        SerialPort(str(plain))
    with pytest.raises(UserError, match="baud rate 12345"):
        SerialPort(str(plain), 12345)
