"""Host side of the UART top: send images over a serial port, read classes back.

Uses the standard library only (termios raw mode), no pyserial.
"""

from __future__ import annotations

import os
import select
import termios
import time
import tty

import numpy as np

from mstbnn.boards.protocol import RESYNC_SECONDS, InputFormat, encode_image
from mstbnn.errors import UserError

__all__ = ["SerialPort", "classify", "BAUD_RATES"]

BAUD_RATES = {
    9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400, 57600: termios.B57600,
    115200: termios.B115200, 230400: termios.B230400,
}
for _rate in (460800, 921600, 1000000, 2000000, 3000000):
    if hasattr(termios, f"B{_rate}"):
        BAUD_RATES[_rate] = getattr(termios, f"B{_rate}")


class SerialPort:
    """A serial device in raw 8N1 mode at ``baud``; a context manager."""

    def __init__(self, path: str, baud: int = 115200):
        if baud not in BAUD_RATES:
            raise UserError(f"baud rate {baud} not supported; choose one of {', '.join(map(str, BAUD_RATES))}")
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise UserError(f"cannot open serial port {path}: {exc.strerror}; check --port and permissions") from None
        try:
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[2] &= ~(termios.PARENB | termios.CSTOPB | termios.CSIZE | getattr(termios, "CRTSCTS", 0))
            attrs[2] |= termios.CS8 | termios.CLOCAL | termios.CREAD
            attrs[4] = attrs[5] = BAUD_RATES[baud]
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        except termios.error as exc:
            os.close(self.fd)
            raise UserError(f"{path} is not a serial port ({exc.args[-1]}); check --port") from None
        self.path = path

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], 1.0)
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def read(self, count: int, timeout: float) -> bytes:
        """Up to ``count`` bytes, waiting at most ``timeout`` seconds in all."""
        out = bytearray()
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                break
            try:
                out += os.read(self.fd, count - len(out))
            except BlockingIOError:
                continue
        return bytes(out)

    def drain_input(self) -> None:
        termios.tcflush(self.fd, termios.TCIFLUSH)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def classify(port: SerialPort, fmt: InputFormat, images, *, timeout: float = 1.0, on_result=None) -> np.ndarray:
    """Send each image and read its class byte; one image in flight at a time.

    Raises
    ------
    UserError
        When the board does not answer within ``timeout`` seconds or answers
        with a class the network does not have.
    """
    # Silence first: the board drops any image a previous session left half sent.
    time.sleep(RESYNC_SECONDS)
    port.drain_input()
    classes = []
    for i, x in enumerate(images):
        port.write(encode_image(fmt, x))
        answer = port.read(1, timeout)
        if not answer:
            raise UserError(f"no answer from {port.path} for image {i} within {timeout:g} s; "
                            f"is the bitstream for this network loaded and --baud right?")
        c = answer[0]
        if c >= fmt.n_classes:
            raise UserError(f"{port.path} answered class {c} for image {i}, but the network has "
                            f"{fmt.n_classes} classes; is the bitstream for this network loaded?")
        classes.append(c)
        if on_result is not None:
            on_result(i, c)
    return np.asarray(classes, dtype=np.int64)
