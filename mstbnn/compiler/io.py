"""Artefact format: a compiled network on disk.

An artefact is a directory holding two files:

``network.json``
    The header: ``{"format": "mstbnn-network", "version": 1, "layers": [...],
    "meta": {...}, "stats": {...}}``. Each layer entry has ``kind`` and its
    scalar fields; arrays are named ``L<i>.<field>`` in the npz.
``network.npz``
    The arrays (weights as uint8 bits, thresholds, schedules). A schedule is
    stored as ``L<i>.schedule.parent`` (int64, -1 for roots),
    ``.negate`` (uint8), ``.level`` (int64), ``.order`` (int64) and the
    correction sets in CSR form: ``.positions`` (int64, concatenated per
    channel) and ``.offsets`` (int64, C + 1).

Both files are written byte-deterministically (fixed zip timestamps, sorted
keys) and atomically (temporary file, then rename). Loading checks the format
name and version and validates the whole network.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from mstbnn.compiler.ir import (
    BinaryConv2d,
    BinaryDense,
    InputQuantizer,
    MaxPool,
    Network,
    Threshold,
)
from mstbnn.compiler.schedule import Schedule
from mstbnn.compiler.validate import validate
from mstbnn.artefact import ARRAYS, HEADER, atomic_write, write_new_directory
from mstbnn.errors import UserError

__all__ = ["FORMAT", "VERSION", "save", "load", "HEADER", "ARRAYS"]

FORMAT = "mstbnn-network"
VERSION = 1

# Scalar fields per kind, in file order; everything else is an array.
_SCALARS = {
    "input": ("shape", "mode", "bits", "signed"),
    "dense": (),
    "conv2d": ("stride", "padding"),
    "threshold": (),
    "maxpool": ("kernel", "stride"),
}
_ARRAY_FIELDS = {
    "input": ("thresholds",),
    "dense": ("weights",),
    "conv2d": ("weights",),
    "threshold": ("threshold", "direction"),
    "maxpool": (),
}
_CLASSES = {
    "input": InputQuantizer,
    "dense": BinaryDense,
    "conv2d": BinaryConv2d,
    "threshold": Threshold,
    "maxpool": MaxPool,
}


def npz_bytes(arrays: dict) -> bytes:
    """An .npz archive of ``arrays`` with fixed timestamps: the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            arr_buf = io.BytesIO()
            np.lib.format.write_array(arr_buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, arr_buf.getvalue())
    return buf.getvalue()


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def save(net: Network, directory, stats: dict | None = None, files: dict | None = None) -> Path:
    """Validate ``net`` and write it to ``directory`` (created if missing), crash-safely.

    ``files`` maps further file names of the artefact (e.g. the test set) to
    their bytes. The header lists the sha256 of the arrays and of each such
    file (``files``) and is written last, so :func:`load` refuses a directory
    where a write was interrupted. A new directory is built beside its final
    name and renamed once: a crash leaves no directory at all.

    Returns the path of the header file.
    """
    validate(net)
    directory = Path(directory)
    layers_json = []
    arrays = {}
    for i, layer in enumerate(net.layers):
        entry = {"kind": layer.kind}
        for name in _SCALARS[layer.kind]:
            entry[name] = _jsonable(getattr(layer, name))
        for name in _ARRAY_FIELDS[layer.kind]:
            value = getattr(layer, name)
            if value is None:
                continue
            key = f"L{i}.{name}"
            arrays[key] = value.astype(np.uint8) if name == "weights" else value.astype(np.int64)
            entry[name] = key
        sched = getattr(layer, "schedule", None)
        if sched is not None:
            key = f"L{i}.schedule"
            arrays[key + ".parent"] = sched.parent.astype(np.int64)
            arrays[key + ".negate"] = sched.negate.astype(np.uint8)
            arrays[key + ".level"] = sched.level.astype(np.int64)
            arrays[key + ".order"] = sched.order.astype(np.int64)
            lengths = np.array([len(p) for p in sched.positions], dtype=np.int64)
            arrays[key + ".offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            arrays[key + ".positions"] = (
                np.concatenate(sched.positions).astype(np.int64) if lengths.sum() else np.zeros(0, dtype=np.int64)
            )
            entry["schedule"] = key
        layers_json.append(entry)
    payloads = {ARRAYS: npz_bytes(arrays), **(files or {})}
    header = {
        "format": FORMAT,
        "version": VERSION,
        "layers": layers_json,
        "meta": _jsonable(net.meta),
        "stats": _jsonable(stats or {}),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(payloads.items())},
    }
    payloads[HEADER] = (json.dumps(header, indent=1, sort_keys=True) + "\n").encode()
    if directory.exists():
        previous = _listed_files(directory)
        for name, data in payloads.items():  # the header last (dicts keep insertion order)
            atomic_write(directory / name, data)
        for name in previous - set(payloads):
            (directory / name).unlink(missing_ok=True)
    else:
        write_new_directory(directory, payloads)
    return directory / HEADER


def _listed_files(directory: Path) -> set:
    try:
        return set(json.loads((directory / HEADER).read_text()).get("files", {}))
    except (OSError, ValueError, AttributeError):
        return set()


def read_header(directory) -> dict:
    """Read and check the JSON header of the artefact in ``directory``."""
    path = Path(directory)
    if path.is_dir():
        path = path / HEADER
    if not path.is_file():
        raise UserError(
            f"{path}: no compiled network here (expected {HEADER}); run `mstbnn compile MODEL -o DIR` first"
        )
    try:
        header = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid JSON header ({exc}); recompile with `mstbnn compile`") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{path}: not an mstbnn network (format field is not {FORMAT!r})")
    if header.get("version") != VERSION:
        raise UserError(
            f"{path}: artefact version {header.get('version')!r} is not supported (this mstbnn reads version {VERSION}); "
            "recompile with `mstbnn compile`"
        )
    if not isinstance(header.get("layers"), list):
        raise UserError(f"{path}: header has no 'layers' list")
    return header


def check_files(root: Path, header: dict) -> None:
    """Refuse an artefact whose files are not the ones its header lists (an interrupted write, a hand edit)."""
    listed = header.get("files", {})
    if not isinstance(listed, dict):
        raise UserError(f"{root / HEADER}: 'files' is not a mapping of file names to sha256; recompile with `mstbnn compile`")
    for name, digest in sorted(listed.items()):
        path = root / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise UserError(f"{path}: does not match {HEADER} (a write was interrupted, or the file was changed "
                            "by hand); recompile with `mstbnn compile`")


def load(directory) -> Network:
    """Load and validate the artefact in ``directory`` (or its ``network.json``)."""
    path = Path(directory)
    root = path if path.is_dir() else path.parent
    header = read_header(path)
    npz_path = root / ARRAYS
    if not npz_path.is_file():
        raise UserError(f"{npz_path}: array file missing; the artefact is incomplete, recompile with `mstbnn compile`")
    check_files(root, header)
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{npz_path}: unreadable array file ({exc}); recompile with `mstbnn compile`") from None

    def array(i, kind, entry, name, required=True):
        key = entry.get(name)
        if key is None:
            if required:
                raise UserError(f"layer {i} ({kind}): field '{name}' is missing from {HEADER}")
            return None
        if key not in arrays:
            raise UserError(f"layer {i} ({kind}): field '{name}' refers to array {key!r}, which {ARRAYS} lacks")
        return arrays[key]

    layers = []
    for i, entry in enumerate(header["layers"]):
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind not in _CLASSES:
            raise UserError(f"layer {i}: unknown kind {kind!r}; expected one of {', '.join(_CLASSES)}")
        kwargs = {}
        for name in _SCALARS[kind]:
            if name not in entry:
                if kind == "input" and name in ("bits", "signed"):
                    continue
                raise UserError(f"layer {i} ({kind}): field '{name}' is missing from {HEADER}")
            kwargs[name] = tuple(entry[name]) if name == "shape" else entry[name]
        for name in _ARRAY_FIELDS[kind]:
            required = not (kind == "input" and name == "thresholds")
            value = array(i, kind, entry, name, required)
            if value is not None:
                kwargs[name] = value.astype(bool) if name == "weights" and np.isin(value, (0, 1)).all() else value
        layer = _CLASSES[kind](**kwargs)
        if kind in ("dense", "conv2d") and entry.get("schedule") is not None:
            key = entry["schedule"]
            try:
                parent = arrays[key + ".parent"]
                offsets = arrays[key + ".offsets"]
                flat = arrays[key + ".positions"]
                negate = arrays[key + ".negate"].astype(bool)
                level = arrays[key + ".level"]
                order = arrays[key + ".order"]
            except KeyError as exc:
                raise UserError(f"layer {i} ({kind}): schedule array {exc.args[0]!r} missing from {ARRAYS}") from None
            c = layer.weights.shape[0]
            if offsets.shape != (c + 1,) or offsets[0] != 0 or offsets[-1] != flat.size or (np.diff(offsets) < 0).any():
                raise UserError(f"layer {i} ({kind}): schedule offsets do not describe {c} correction sets")
            positions = tuple(flat[offsets[j] : offsets[j + 1]].astype(np.int64) for j in range(c))
            layer.schedule = Schedule(order=order, parent=parent, negate=negate, level=level, positions=positions)
        layers.append(layer)
    net = Network(layers=layers, meta=header.get("meta") or {})
    validate(net)
    return net
