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
import zlib
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

# Header field types per kind (a bool is not an int here: ``"bits": true`` is refused).
_SCALAR_TYPES = {
    "shape": "list", "mode": "str", "bits": "int", "signed": "bool",
    "stride": "int", "padding": "int", "kernel": "int",
}
# Array field -> (allowed dtype kinds, ndim); "b" bool, "i" signed, "u" unsigned integers.
_ARRAY_SPECS = {
    "weights": ("biu", None),  # ndim checked per kind below
    "thresholds": ("iu", None),
    "threshold": ("iu", 1),
    "direction": ("iu", 1),
}
_SCHEDULE_SPECS = {
    "parent": "iu", "order": "iu", "level": "iu", "offsets": "iu", "positions": "iu", "negate": "biu",
}
_WEIGHT_NDIM = {"dense": 2, "conv2d": 4}


def _scalar(value, kind_name: str, where: str, name: str):
    ok = {
        "list": isinstance(value, list),
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[kind_name]
    if not ok:
        expected = {"list": "a list of integers", "str": "a string", "int": "an integer", "bool": "true or false"}
        raise UserError(f"{where}: field '{name}' in {HEADER} is {value!r}, expected {expected[kind_name]}; "
                        "recompile with `mstbnn compile`")
    if kind_name == "list" and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise UserError(f"{where}: field '{name}' in {HEADER} is {value!r}, expected a list of integers; "
                        "recompile with `mstbnn compile`")
    return tuple(value) if kind_name == "list" else value


def _typed_array(value: np.ndarray, kinds: str, ndim, where: str, name: str) -> np.ndarray:
    """Refuse a stored array of the wrong dtype or rank instead of converting (truncating) it."""
    if value.dtype.kind not in kinds:
        expected = "integers" if "b" not in kinds else "bits (bool or integer 0/1)"
        raise UserError(f"{where}: {name} in {ARRAYS} has dtype {value.dtype}, expected {expected}; "
                        "recompile with `mstbnn compile`")
    if value.dtype.kind == "u" and value.size and int(value.max()) > np.iinfo(np.int64).max:
        raise UserError(f"{where}: {name} in {ARRAYS} holds {int(value.max())}, beyond int64; "
                        "recompile with `mstbnn compile`")
    if ndim is not None and value.ndim != ndim:
        raise UserError(f"{where}: {name} in {ARRAYS} has shape {value.shape}, expected {ndim} dimension(s); "
                        "recompile with `mstbnn compile`")
    return value


def load(directory) -> Network:
    """Load and validate the artefact in ``directory`` (or its ``network.json``).

    Every field is checked for its type (header) or dtype and rank (arrays)
    before it is used, so a damaged artefact is one UserError, never a
    conversion that silently changes a value (a float position truncated).
    """
    path = Path(directory)
    root = path if path.is_dir() else path.parent
    header = read_header(path)
    npz_path = root / ARRAYS
    if not npz_path.is_file():
        raise UserError(f"{npz_path}: array file missing; the artefact is incomplete, recompile with `mstbnn compile`")
    check_files(root, header)
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ValueError("not an .npz archive")
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{npz_path}: unreadable array file ({exc}); recompile with `mstbnn compile`") from None
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise UserError(f"{root / HEADER}: field 'meta' is {type(meta).__name__}, expected an object; "
                        "recompile with `mstbnn compile`")
    if not isinstance(header.get("stats", {}), dict):
        raise UserError(f"{root / HEADER}: field 'stats' is {type(header['stats']).__name__}, expected an object; "
                        "recompile with `mstbnn compile`")

    def array(where, entry, name, required=True):
        key = entry.get(name)
        if key is None:
            if required:
                raise UserError(f"{where}: field '{name}' is missing from {HEADER}")
            return None
        if not isinstance(key, str):
            raise UserError(f"{where}: field '{name}' in {HEADER} is {key!r}, expected an array name such as "
                            f"'L1.{name}'; recompile with `mstbnn compile`")
        if key not in arrays:
            raise UserError(f"{where}: field '{name}' refers to array {key!r}, which {ARRAYS} lacks")
        return arrays[key]

    layers = []
    for i, entry in enumerate(header["layers"]):
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if not isinstance(kind, str) or kind not in _CLASSES:
            raise UserError(f"layer {i}: unknown kind {kind!r}; expected one of {', '.join(_CLASSES)}")
        where = f"layer {i} ({kind})"
        kwargs = {}
        for name in _SCALARS[kind]:
            if name not in entry:
                if kind == "input" and name in ("bits", "signed"):
                    continue
                raise UserError(f"{where}: field '{name}' is missing from {HEADER}")
            kwargs[name] = _scalar(entry[name], _SCALAR_TYPES[name], where, name)
        for name in _ARRAY_FIELDS[kind]:
            required = not (kind == "input" and name == "thresholds")
            value = array(where, entry, name, required)
            if value is None:
                continue
            kinds, ndim = _ARRAY_SPECS[name]
            value = _typed_array(value, kinds, _WEIGHT_NDIM.get(kind) if name == "weights" else ndim, where, name)
            if name == "weights" and value.dtype != bool and np.isin(value, (0, 1)).all():
                value = value.astype(bool)  # other integers: validate names the values
            kwargs[name] = value
        layer = _CLASSES[kind](**kwargs)
        if kind in ("dense", "conv2d") and entry.get("schedule") is not None:
            key = entry["schedule"]
            if not isinstance(key, str):
                raise UserError(f"{where}: field 'schedule' in {HEADER} is {key!r}, expected an array prefix such as "
                                f"'L{i}.schedule'; recompile with `mstbnn compile`")
            parts = {}
            for name, kinds in _SCHEDULE_SPECS.items():
                if f"{key}.{name}" not in arrays:
                    raise UserError(f"{where}: schedule array {key + '.' + name!r} missing from {ARRAYS}")
                parts[name] = _typed_array(arrays[f"{key}.{name}"], kinds, 1, where, f"schedule.{name}")
            if not np.isin(parts["negate"], (0, 1)).all():
                raise UserError(f"{where}: schedule.negate in {ARRAYS} holds values other than 0/1")
            c = layer.weights.shape[0]
            offsets, flat = parts["offsets"].astype(np.int64), parts["positions"].astype(np.int64)
            if offsets.shape != (c + 1,) or offsets[0] != 0 or offsets[-1] != flat.size or (np.diff(offsets) < 0).any():
                raise UserError(f"{where}: schedule offsets do not describe {c} correction sets")
            positions = tuple(flat[offsets[j] : offsets[j + 1]] for j in range(c))
            layer.schedule = Schedule(order=parts["order"].astype(np.int64), parent=parts["parent"].astype(np.int64),
                                      negate=parts["negate"].astype(bool), level=parts["level"].astype(np.int64),
                                      positions=positions)
        layers.append(layer)
    net = Network(layers=layers, meta=meta)
    validate(net)
    return net
