"""Tests for vqlib.data: offline datasets, raw-file readers and input checks."""

import gzip
import importlib.util
import os
import pickle
import re

import numpy as np
import pytest
import torch

from vqlib.data import (
    check_images,
    load_dataset,
    make_synthetic,
    synthetic_prototypes,
    train_test_split,
)

# --- digits ----------------------------------------------------------------


def test_digits_all():
    x, y = load_dataset("digits", split="all", return_labels=True)
    assert x.shape == (1797, 1, 8, 8)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.shape == (1797,) and set(y.tolist()) == set(range(10))
    assert x.min() == 0 and x.max() == 1
    # exact scaling of sklearn's 0..16 values
    assert torch.equal(x * 16, torch.round(x * 16))


def test_digits_split_is_fixed_and_disjoint():
    train = load_dataset("digits")
    test = load_dataset("digits", split="test", seed=123)
    everything = load_dataset("digits", split="all")
    assert train.shape == (1500, 1, 8, 8) and test.shape == (297, 1, 8, 8)
    assert torch.equal(train, load_dataset("digits", split="train", seed=7))
    # train and test partition "all": same multiset of images (digits has duplicates)
    rows = lambda t: sorted(r.numpy().tobytes() for r in t.flatten(1))  # noqa: E731
    assert rows(torch.cat([train, test])) == rows(everything)


def test_subset_is_seeded():
    a = load_dataset("digits", split="all", n=100, seed=1)
    b = load_dataset("digits", split="all", n=100, seed=1)
    c = load_dataset("digits", split="all", n=100, seed=2)
    assert a.shape == (100, 1, 8, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    full = load_dataset("digits", split="all")
    assert torch.equal(load_dataset("digits", split="all", n=1797), full)


# --- synthetic -------------------------------------------------------------


def test_synthetic_shapes_and_labels():
    x, y = make_synthetic(300, n_clusters=5, shape=(2, 4, 3), seed=3, return_labels=True)
    assert x.shape == (300, 2, 4, 3) and x.dtype == torch.float32
    assert y.shape == (300,) and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) == set(range(5))


def test_synthetic_is_seeded():
    assert torch.equal(make_synthetic(64, seed=4), make_synthetic(64, seed=4))
    assert not torch.equal(make_synthetic(64, seed=4), make_synthetic(64, seed=5))
    assert torch.equal(load_dataset("synthetic", n=64, seed=4), make_synthetic(64, seed=4))


def test_synthetic_structure():
    x, y = make_synthetic(2000, n_clusters=4, noise=0.05, seed=0, return_labels=True)
    protos = synthetic_prototypes(4, seed=0)
    assert set(protos.unique().tolist()) <= {0.0, 1.0}
    assert len({p.numpy().tobytes() for p in protos}) == 4
    for k in range(4):
        mean = x[y == k].mean(0)
        # clipping pulls the mean of N(0, 0.05) noise on {0, 1} by ~0.02 at most
        assert (mean - protos[k]).abs().max() < 0.05
    # every sample is nearest to its own prototype
    dist = torch.cdist(x.flatten(1), protos.flatten(1))
    assert torch.equal(dist.argmin(1), y)


def test_synthetic_train_test_share_prototypes():
    xtr, ytr = load_dataset("synthetic", n=500, seed=9, return_labels=True)
    xte, yte = load_dataset("synthetic", split="test", n=500, seed=9, return_labels=True)
    assert not torch.equal(xtr, xte)
    for k in range(4):
        assert (xtr[ytr == k].mean(0) - xte[yte == k].mean(0)).abs().max() < 0.05


# --- MNIST-style IDX files ---------------------------------------------------


def _idx(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write(path, data: bytes, gz: bool):
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _write_mnist(root, folder, gz, rng):
    raw = root / folder / "raw"
    data = {}
    for prefix, n in (("train", 5), ("t10k", 3)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write(raw / f"{prefix}-images-idx3-ubyte", _idx(images, 0x803), gz)
        _write(raw / f"{prefix}-labels-idx1-ubyte", _idx(labels, 0x801), gz)
        data[prefix] = images, labels
    return data


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_loader(tmp_path, name, folder, gz):
    data = _write_mnist(tmp_path, folder, gz, np.random.default_rng(0))
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = load_dataset(name, root=tmp_path, split=split, return_labels=True)
        images, labels = data[prefix]
        assert x.shape == (len(images), 1, 28, 28) and x.dtype == torch.float32
        assert torch.equal(x, torch.from_numpy(images[:, None] / np.float32(255)))
        assert y.tolist() == labels.tolist()
    x = load_dataset(name, root=tmp_path, split="all")
    assert len(x) == 8


def test_idx_aliases_and_env_root(tmp_path, monkeypatch):
    _write_mnist(tmp_path, "FashionMNIST", False, np.random.default_rng(1))
    monkeypatch.setenv("VQLIB_DATA", str(tmp_path))
    assert torch.equal(load_dataset("fmnist"), load_dataset("fashion_mnist", root=tmp_path))


def test_idx_bad_magic(tmp_path):
    _write_mnist(tmp_path, "MNIST", False, np.random.default_rng(0))
    bad = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    bad.write_bytes(_idx(np.zeros((2, 28, 28), np.uint8), 0x801))
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_dataset("mnist", root=tmp_path)


def test_idx_truncated(tmp_path):
    _write_mnist(tmp_path, "MNIST", True, np.random.default_rng(0))
    bad = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(_idx(np.zeros(3, np.uint8), 0x801)[:-1])
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_dataset("mnist", root=tmp_path, split="test")


# --- CIFAR-10 pickle batches ---------------------------------------------------


def _write_cifar(root, rng, protocol=2, sizes=(2, 3, 1, 2, 2, 4)):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {}
    for name, n in zip(names, sizes):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        batch = {b"batch_label": name.encode(), b"data": data, b"labels": labels}
        blob = pickle.dumps(batch, protocol)
        (folder / name).write_bytes(blob)
        batches[name] = data, labels
    return batches


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10(tmp_path, protocol):
    batches = _write_cifar(tmp_path, np.random.default_rng(0), protocol)
    x, y = load_dataset("cifar10", root=tmp_path, return_labels=True)
    data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32
    assert y.tolist() == sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    # channel-major rows: the first 1024 bytes are the red plane, row by row
    assert torch.equal(x[:, 0].flatten(1), torch.from_numpy(data[:, :1024] / np.float32(255)))
    assert x[0, 2, 1, 5].item() == pytest.approx(data[0, 2048 + 32 + 5] / 255)
    xt, yt = load_dataset("cifar-10", root=tmp_path, split="test", return_labels=True)
    assert xt.shape == (4, 3, 32, 32) and yt.tolist() == batches["test_batch"][1]


def test_cifar10_old_numpy_pickle(tmp_path):
    batches = _write_cifar(tmp_path, np.random.default_rng(2))
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    x = load_dataset("cifar10", root=tmp_path, split="test")
    assert torch.equal(x.flatten(1), torch.from_numpy(batches["test_batch"][0] / np.float32(255)))


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar10_refuses_arbitrary_objects(tmp_path):
    _write_cifar(tmp_path, np.random.default_rng(0))
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": _Payload(), b"labels": []}))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_dataset("cifar10", root=tmp_path, split="test")


# --- missing files -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("fashion-mnist", "FashionMNIST/raw/train-labels-idx1-ubyte"),
        ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ],
)
def test_missing_files(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset(name, root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / expected) in message
    assert "download=True" in message and "offline" in message and '"digits"' in message


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed"
)
def test_download_without_torchvision(tmp_path):
    with pytest.raises(FileNotFoundError, match="torchvision") as info:
        load_dataset("mnist", root=tmp_path, download=True)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)


# --- bad inputs ------------------------------------------------------------------


def test_bad_name_and_split():
    with pytest.raises(ValueError, match=r"name='imagenet'.*digits.*cifar10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="split='validation'"):
        load_dataset("digits", split="validation")


@pytest.mark.parametrize("n", [0, -3, 1798, 2.5, True])
def test_bad_n(n):
    with pytest.raises(ValueError, match=r"\bn\b"):
        load_dataset("digits", split="all", n=n)


def test_bad_synthetic_arguments():
    with pytest.raises(ValueError, match=r"\bn\b"):
        load_dataset("synthetic", n=0)
    with pytest.raises(ValueError, match="n_clusters"):
        make_synthetic(10, n_clusters=0)
    for noise in (-1.0, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="noise"):
            make_synthetic(10, noise=noise)
    with pytest.raises(ValueError, match="shape"):
        make_synthetic(10, shape=(8, 8))


def test_check_images_accepts_and_converts():
    x = np.random.default_rng(0).random((4, 1, 8, 8))
    out = check_images(x, in_shape=(1, 8, 8))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert torch.allclose(out, torch.from_numpy(x).float())


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (torch.full((2, 1, 4, 4), float("nan")), "batch.*NaN"),
        (torch.full((2, 1, 4, 4), float("inf")), "batch.*infinite"),
        (torch.full((2, 1, 4, 4), 1.5), "batch.*max 1.5"),
        (torch.full((2, 1, 4, 4), -0.1), "batch.*min -0.1"),
        (torch.zeros(2, 16), r"batch.*\(N, C, H, W\)"),
        (np.zeros((2, 1, 4, 4), np.uint8), "batch.*floating"),
        (torch.zeros(2, 1, 4, 4, dtype=torch.int64), "batch.*floating"),
        ([[0.5]], "batch.*tensor"),
    ],
)
def test_check_images_rejects(bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_images(bad, name="batch")


def test_check_images_shape_mismatch():
    with pytest.raises(ValueError, match=r"batch.*\(1, 4, 4\).*\(3, 4, 4\)"):
        check_images(torch.zeros(2, 1, 4, 4), name="batch", in_shape=(3, 4, 4))


# --- train_test_split --------------------------------------------------------------


def test_train_test_split():
    x = torch.arange(20.0)
    a, b = train_test_split(x, 15, seed=1)
    assert len(a) == 15 and len(b) == 5
    assert sorted(torch.cat([a, b]).tolist()) == x.tolist()
    a2, b2 = train_test_split(x, 15, seed=1)
    assert torch.equal(a, a2) and torch.equal(b, b2)
    assert not torch.equal(a, train_test_split(x, 15, seed=2)[0])
    na, nb = train_test_split(x.numpy(), 15, seed=1)
    assert na.tolist() == a.tolist() and nb.tolist() == b.tolist()


@pytest.mark.parametrize("n_train", [0, 20, 21, -1, 3.0])
def test_train_test_split_bad(n_train):
    with pytest.raises(ValueError, match="n_train"):
        train_test_split(torch.zeros(20), n_train)
