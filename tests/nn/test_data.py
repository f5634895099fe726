import gzip
import pickle

import numpy as np
import pytest

from mstbnn.errors import UserError
from mstbnn.nn.data import load_cifar10, load_dataset, load_digits, load_mnist, load_npz


def test_digits_split_is_fixed_and_integer(digits):
    again = load_digits()
    assert digits.x_train.shape == (1347, 64) and digits.x_test.shape == (450, 64)
    assert np.array_equal(digits.x_test, again.x_test) and np.array_equal(digits.y_train, again.y_train)
    assert digits.x_train.dtype == np.int64 and 0 <= digits.x_train.min() and digits.max_value == 16
    assert (digits.bits, digits.signed, digits.n_classes) == (5, False, 10)
    assert digits.as_images().sample_shape == (1, 8, 8)


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("shape", [(6,), (5, 5), (2, 4, 4)])
@pytest.mark.parametrize("lo,hi,bits,signed", [(0, 255, 8, False), (-8, 7, 4, True), (0, 1, 1, False)])
def test_npz_roundtrip(tmp_path, shape, lo, hi, bits, signed):
    rng = np.random.default_rng(0)
    x_tr = rng.integers(lo, hi + 1, (20,) + shape)
    x_tr.flat[0], x_tr.flat[1] = lo, hi
    x_te = rng.integers(lo, hi + 1, (7,) + shape).astype(np.float32)  # integral floats are accepted
    p = _save(tmp_path / "mine.npz", x_train=x_tr, y_train=rng.integers(0, 3, 20), x_test=x_te,
              y_test=rng.integers(0, 3, 7))
    d = load_dataset(str(p))
    assert d.sample_shape == shape and (d.bits, d.signed) == (bits, signed)
    assert d.x_test.dtype == np.int64 and np.array_equal(d.x_test, x_te.astype(np.int64))


@pytest.mark.parametrize("mutate,needle", [
    (lambda a: a.pop("y_test"), r"lacks array\(s\) y_test"),
    (lambda a: a.update(x_train=a["x_train"] + 0.5), "must be integers"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "counts must match"),
    (lambda a: a.update(x_test=a["x_test"][:, :3]), "differ in shape"),
    (lambda a: a.update(y_train=-a["y_train"] - 1), "labels must be integers"),
    (lambda a: a.update(x_train=a["x_train"].reshape(10, 2, 3, 1, 1)), "must be shaped"),
])
def test_npz_malformed(tmp_path, mutate, needle):
    rng = np.random.default_rng(1)
    arrays = dict(x_train=rng.integers(0, 9, (10, 6)).astype(np.float64), y_train=rng.integers(0, 3, 10),
                  x_test=rng.integers(0, 9, (4, 6)), y_test=rng.integers(0, 3, 4))
    mutate(arrays)
    p = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=needle) as err:
        load_npz(p)
    assert "\n" not in str(err.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(str(tmp_path / "nope.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_npz(tmp_path / "junk.npz")
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("mnist")
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(UserError, match="not found"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(UserError, match="data_batch_1"):
        load_cifar10(tmp_path)


def _idx(path, magic, arr, compress):
    head = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx(tmp_path, compress):
    rng = np.random.default_rng(2)
    xs = {n: rng.integers(0, 256, (k, 28, 28)) for n, k in (("train", 5), ("t10k", 3))}
    ys = {"train": rng.permutation(5), "t10k": rng.integers(0, 5, 3)}  # every class in training
    for n in xs:
        _idx(tmp_path / f"{n}-images-idx3-ubyte", 2051, xs[n], compress)
        _idx(tmp_path / f"{n}-labels-idx1-ubyte", 2049, ys[n], compress)
    d = load_dataset("mnist", tmp_path)
    assert d.sample_shape == (1, 28, 28) and d.bits == 8
    assert np.array_equal(d.x_train[:, 0], xs["train"]) and np.array_equal(d.y_test, ys["t10k"])


def test_mnist_bad_magic(tmp_path):
    rng = np.random.default_rng(3)
    for n in ("train", "t10k"):
        _idx(tmp_path / f"{n}-images-idx3-ubyte", 2049, rng.integers(0, 256, (2, 28, 28)), False)
        _idx(tmp_path / f"{n}-labels-idx1-ubyte", 2049, rng.integers(0, 10, 2), False)
    with pytest.raises(UserError, match="magic number 2051"):
        load_mnist(tmp_path)


def test_cifar10_batches(tmp_path):
    rng = np.random.default_rng(4)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        with open(d / name, "wb") as f:  # labels 0..9 all in training (a class check refuses gaps)
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8),
                         b"labels": [int(v) for v in (np.arange(4) + 2 * i) % 10]}, f)
    data = load_dataset("cifar10", tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    (d / "test_batch").write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a CIFAR-10 python batch"):
        load_cifar10(tmp_path)
