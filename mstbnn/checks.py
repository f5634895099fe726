"""Argument checks shared by every command: numbers, seeds, output paths.

Each command keeps its own checks in one function beside its parser and calls
these helpers, so a bad value is refused before any work starts, with one
:class:`~mstbnn.errors.UserError` line that names the option and what to do.
Only the standard library is imported here.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from mstbnn.errors import UserError

__all__ = ["SEED_MAX", "number", "integer", "seed", "writable_output", "no_spaces"]

# numpy's and torch's generators both take any seed in 0 .. 2^32 - 1.
SEED_MAX = 2**32 - 1


def number(option: str, value, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, why: str = "") -> float:
    """A finite float within bounds (``above``: strictly greater than)."""
    if value is None:
        return value
    tail = f" ({why})" if why else ""
    if not math.isfinite(value):
        raise UserError(f"{option} {value}: must be a finite number{tail}")
    if above is not None and not value > above:
        raise UserError(f"{option} {value:g}: must be greater than {above:g}{tail}")
    if minimum is not None and value < minimum:
        raise UserError(f"{option} {value:g}: must be at least {minimum:g}{tail}")
    if maximum is not None and value > maximum:
        raise UserError(f"{option} {value:g}: must be at most {maximum:g}{tail}")
    return value


def integer(option: str, value, *, minimum: int | None = None, maximum: int | None = None, why: str = "") -> int:
    """An integer within bounds (``None`` passes: an unset optional argument)."""
    if value is None:
        return value
    tail = f" ({why})" if why else ""
    if minimum is not None and value < minimum:
        bound = "0 or more" if minimum == 0 else f"at least {minimum:,}"
        raise UserError(f"{option} {value}: must be {bound}{tail}")
    if maximum is not None and value > maximum:
        raise UserError(f"{option} {value}: must be at most {maximum:,}{tail}")
    return value


def seed(option: str, value: int) -> int:
    return integer(option, value, minimum=0, maximum=SEED_MAX, why="a seed is 0 .. 2^32 - 1")


def writable_output(option: str, path, *, directory: bool) -> Path:
    """Refuse an output path that cannot be written, before any work.

    ``path`` (a file, or with ``directory`` a directory) need not exist; its
    nearest existing ancestor must be a directory in which a file can be
    created (a probe file, removed at once). Catches ``-o`` under a regular
    file, on a read-only file system and under ``/proc``.
    """
    path = Path(path)
    if path.exists():
        if directory and not path.is_dir():
            raise UserError(f"{option} {path}: exists and is not a directory; choose another {option}")
        if not directory and path.is_dir():
            raise UserError(f"{option} {path}: is a directory; give a file name such as {path / 'model.pt'}")
    probe_dir = path if (directory and path.is_dir()) else path.parent
    ancestor = probe_dir
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise UserError(f"{option} {path}: {ancestor} is a file, not a directory; choose another {option}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mstbnn-probe-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write in {ancestor} ({exc.strerror}); "
                        f"choose a writable {option}") from None
    return path


def no_spaces(path, why: str) -> None:
    """Refuse a path with white space in it for a tool that cannot quote it."""
    full = str(Path(path).absolute())
    if any(c.isspace() for c in full):
        raise UserError(f"{full}: the path contains white space, which {why}; "
                        "move the directory to a path without spaces")
