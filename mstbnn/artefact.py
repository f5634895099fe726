"""The artefact directory: every file name in it, the atomic write, the digest, the test-set reader.

One owner for these facts, shared by every stage (compiler, hw, sim, boards,
prove, report): a stage never spells a file name of the directory itself.

Layout of an artefact directory ``DIR``::

    network.json, network.npz   the compiled network (compiler.io)
    testset.npz                 raw integer inputs x and labels y (compile)
    rtl[-folded][-baseline]/    generated Verilog + its engine spec (hw)
    sim[-folded][-baseline].json  simulation figures (sim)
    synth.json                  synthesis / place-and-route runs (boards)
    prove[-folded][-baseline].json  formal proof results (prove)

Only numpy is imported here, so every stage can use it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from mstbnn.errors import UserError

__all__ = [
    "HEADER", "ARRAYS", "TESTSET", "SYNTH_REPORT", "TOP_NAME",
    "engine_suffix", "rtl_dir", "spec_path", "verilog_path", "result_path",
    "atomic_write", "write_new_directory", "network_digest", "read_testset",
]

HEADER = "network.json"
ARRAYS = "network.npz"
TESTSET = "testset.npz"
SYNTH_REPORT = "synth.json"
TOP_NAME = "mstbnn_top"


def engine_suffix(baseline: bool, engine: str = "unrolled") -> str:
    """``""``, ``-baseline``, ``-folded`` or ``-folded-baseline``: how every per-engine file is named."""
    return ("-folded" if engine == "folded" else "") + ("-baseline" if baseline else "")


def rtl_dir(directory, baseline: bool = False, engine: str = "unrolled") -> Path:
    """Where ``mstbnn verilog`` writes an engine: ``DIR/rtl[-folded][-baseline]``."""
    return Path(directory) / ("rtl" + engine_suffix(baseline, engine))


def spec_path(directory, baseline: bool = False, engine: str = "unrolled") -> Path:
    """The engine spec beside the Verilog: ``DIR/rtl.../mstbnn_top.json``."""
    return rtl_dir(directory, baseline, engine) / f"{TOP_NAME}.json"


def verilog_path(directory, baseline: bool = False, engine: str = "unrolled") -> Path:
    """The generated Verilog: ``DIR/rtl.../mstbnn_top.v``."""
    return rtl_dir(directory, baseline, engine) / f"{TOP_NAME}.v"


def result_path(directory, step: str, baseline: bool = False, engine: str = "unrolled") -> Path:
    """A step's per-engine result file: ``DIR/<step>[-folded][-baseline].json`` (step: sim, prove)."""
    return Path(directory) / f"{step}{engine_suffix(baseline, engine)}.json"


def atomic_write(path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one, never a part.

    The temporary file is fsynced before the rename, so a crash leaves no
    truncated file behind the final name either.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({exc.strerror}); choose a writable directory") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_new_directory(directory, files: dict) -> None:
    """Create ``directory`` holding ``files`` (name -> bytes) all at once, or not at all.

    The files are written into a hidden sibling and renamed into place in one
    step, so an interrupted write leaves no half-filled directory.
    """
    import shutil

    directory = Path(directory)
    stage = directory.with_name(f".{directory.name}.tmp{os.getpid()}")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        for name, data in files.items():
            with open(stage / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.rename(stage, directory)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        where = exc.filename or directory
        raise UserError(f"{where}: cannot write the output directory ({exc.strerror}); choose a writable -o") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def network_digest(directory) -> str:
    """sha256 over the network's header and arrays: which network an engine, a report or a proof is about."""
    h = hashlib.sha256()
    for name in (HEADER, ARRAYS):
        p = Path(directory) / name
        if not p.is_file():
            raise UserError(f"{p}: missing; run `mstbnn compile MODEL -o {directory}` first")
        h.update(name.encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def read_testset(path, shape, value_range) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a test set: ``(x, y)`` with x of shape ``(n, *shape)`` as int64 and y the labels (or None).

    Accepts an artefact's own ``testset.npz`` (arrays ``x``, ``y``) or a data
    set file (``x_test``, ``y_test``), or a bare ``.npy`` of inputs. Every
    problem (unreadable, truncated, wrong shape or dtype, values outside
    ``value_range``) is one :class:`UserError`: nothing is truncated or cast.
    """
    import zipfile
    import zlib

    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a bare .npy: inputs only
            x, y = loaded, None
        else:
            with loaded as npz:
                xkey, ykey = ("x", "y") if "x" in npz.files else ("x_test", "y_test")
                if xkey not in npz.files:
                    raise UserError(f"{path}: no x (or x_test) array; give an .npz with x[, y] or x_test[, y_test]")
                x = np.asarray(npz[xkey])
                y = np.asarray(npz[ykey]) if ykey in npz.files else None
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{path}: unreadable test set ({exc}); give an .npz with x[, y] or x_test[, y_test]") from None
    shape = tuple(int(s) for s in shape)
    if x.shape == shape:  # one sample without the batch axis
        x = x[None]
    if x.ndim < 1 or int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise UserError(f"{path}: samples have shape {x.shape[1:]}, the network takes {shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise UserError(f"{path}: inputs have dtype {x.dtype}; the network takes raw integers")
    x = x.reshape((x.shape[0],) + shape).astype(np.int64)
    lo, hi = value_range
    if x.size and (x.min() < lo or x.max() > hi):
        raise UserError(f"{path}: input values span [{x.min()}, {x.max()}], outside the input range [{lo}, {hi}]")
    if y is not None:
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{path}: labels have shape {y.shape} and dtype {y.dtype}; expected {x.shape[0]} integers")
        y = y.astype(np.int64)
    return x, y
