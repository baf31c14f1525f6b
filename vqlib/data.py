"""Datasets for the book (chapter 1 onwards).

Every loader returns images as a ``torch.float32`` tensor of shape
``(N, C, H, W)`` with values in ``[0, 1]``.

* ``"digits"`` ships with scikit-learn and works offline; it is the default.
* ``"synthetic"`` is a small clustered dataset with known structure, for
  computations that can be checked exactly.
* ``"mnist"``, ``"fashion-mnist"`` and ``"cifar10"`` are read from their raw
  files in torchvision's folder layout under ``root`` (default: the
  ``VQLIB_DATA`` environment variable, else ``~/.cache/vqlib/data``). With
  ``download=True`` and torchvision installed, torchvision fetches missing
  files; the reading is always done here.
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
import pickle
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "load_dataset",
    "make_synthetic",
    "synthetic_prototypes",
    "check_images",
    "check_available",
    "train_test_split",
]

DATASETS = ("digits", "synthetic", "mnist", "fashion-mnist", "cifar10")
SPLITS = ("train", "test", "all")

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}

_DIGITS_N_TRAIN = 1500
_IDX_IMAGES = 0x00000803
_IDX_LABELS = 0x00000801

# torchvision's folder and class name for each file-based dataset.
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST"),
    "cifar10": ("cifar-10-batches-py", "CIFAR10"),
}


def load_dataset(
    name: str = "digits",
    *,
    root: str | os.PathLike | None = None,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    download: bool = False,
    return_labels: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset as float32 images in [0, 1] of shape (N, C, H, W) (chapter 1 onwards).

    Used from chapter 1 onwards.

    Pixel values are scaled to [0, 1]: digits' 0..16 by 1/16, the 8-bit files' 0..255 by
    1/255. ``"digits"`` gives (1, 8, 8) images, ``"synthetic"`` (1, 8, 8) (see
    :func:`make_synthetic`), ``"mnist"`` and ``"fashion-mnist"`` (1, 28, 28), ``"cifar10"``
    (3, 32, 32). The file-based datasets are read here from torchvision's layout (IDX files,
    optionally gzipped; CIFAR-10 python batches, unpickled as plain arrays only).

    Parameters
    ----------
    name : str, default "digits"
        One of ``"digits"``, ``"synthetic"``, ``"mnist"``, ``"fashion-mnist"``,
        ``"cifar10"`` (aliases such as ``"fmnist"`` and ``"cifar-10"`` are accepted).
    root : path, optional
        Folder holding the raw files of the file-based datasets (default: ``$VQLIB_DATA``,
        else ``~/.cache/vqlib/data``).
    split : {"train", "test", "all"}, default "train"
        ``"all"`` is train and test together. For ``"digits"`` (1797 images of 8x8) the
        split is fixed and does not depend on ``seed``: 1500 training and 297 test images.
        For ``"synthetic"``, train and test share the cluster prototypes and draw
        independent samples; ``"all"`` is the same as ``"train"``.
    n : int ≥ 1, optional
        Return a random subset of ``n`` images (n ≤ N), chosen with ``seed`` and kept in
        dataset order. For ``"synthetic"`` it is the number of samples generated
        (default 512).
    seed : int, default 0
        Seeds the subset, and the generator for ``"synthetic"``.
    download : bool, default False
        Let torchvision fetch missing files (needs network access and torchvision).
    return_labels : bool, default False
        Also return the int64 labels, shape (N,).

    Returns
    -------
    x : tensor (N, C, H, W), float32, values in [0, 1]
    y : tensor (N,), int64
        Only if ``return_labels``: ``(x, y)``.

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``split``, an ``n`` that is not an integer in [1, N], or
        a data file that is not what its name says.
    FileNotFoundError
        When a file-based dataset's files are missing (the message says where they belong),
        or ``download=True`` without torchvision.
    RuntimeError
        When torchvision's download fails.

    See also
    --------
    check_available, make_synthetic, train_test_split, check_images; chapter 1.
    """
    key = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"unknown dataset name={name!r}; known names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split={split!r}; expected one of {', '.join(SPLITS)}")

    if key == "synthetic":
        size = 512 if n is None else _check_count(n, "n")
        x, y = _synthetic(size, seed=seed, stream=1 if split == "test" else 0)
        return (x, y) if return_labels else x

    if key == "digits":
        x, y = _digits(split)
    else:
        base = Path(root if root is not None else _default_root()).expanduser()
        x, y = _load_files(key, base, split, download)

    if n is not None:
        n = _check_count(n, "n", high=len(x))
        keep = np.sort(_permutation(len(x), seed)[:n])
        x, y = x[keep], y[keep]

    x = torch.from_numpy(np.ascontiguousarray(x))
    y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    return (x, y) if return_labels else x


def check_available(name: str = "digits", *, split: str = "train", root: str | os.PathLike | None = None) -> None:
    """Raise what :func:`load_dataset` would for ``name`` and ``split``, without reading the data (chapters 1–9, CLI).

    ``ValueError`` for an unknown name or split, ``FileNotFoundError`` (saying where the
    files belong) when a file-based dataset's files are missing. ``python -m vqlib`` calls
    it before running a sweep, so missing data stop the run before anything is computed.
    Only the presence of the expected files (or their ``.gz`` versions) is checked, not
    their content; ``"digits"`` and ``"synthetic"`` need no files.

    Parameters
    ----------
    name : str, default "digits"
        A dataset name or alias, as for :func:`load_dataset`.
    split : {"train", "test", "all"}, default "train"
    root : path, optional
        As for :func:`load_dataset`.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``split``.
    FileNotFoundError
        When a file of the split is missing.

    See also
    --------
    load_dataset; chapters 1–9 (``python -m vqlib run``).
    """
    key = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(f"unknown dataset name={name!r}; known names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split={split!r}; expected one of {', '.join(SPLITS)}")
    if key in _TORCHVISION:
        base = Path(root if root is not None else _default_root()).expanduser()
        missing = [p for p in _expected_files(key, base, split) if _find(p) is None]
        if missing:
            raise FileNotFoundError(_missing_message(key, base, missing))


def make_synthetic(
    n: int = 512,
    *,
    n_clusters: int = 4,
    shape: tuple[int, int, int] = (1, 8, 8),
    noise: float = 0.1,
    seed: int = 0,
    return_labels: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Clustered toy images with known structure, for exact computations (chapter 1 onwards).

    Used from chapter 1 onwards, wherever a dataset with a known number of
    modes is needed. ``n_clusters`` distinct binary prototype images are drawn
    from ``seed``; each sample is the prototype of a uniformly drawn cluster
    plus Gaussian noise of standard deviation ``noise``, clipped to [0, 1].
    The labels are the cluster ids. Returns float32 images of shape
    ``(n, *shape)``, and the int64 labels if ``return_labels``.

    That is, y_j ~ Uniform{0, …, n_clusters − 1} and x_j = clip(μ_{y_j} + noise·ε_j, 0, 1) with
    ε_j ~ N(0, I) and μ the prototypes (:func:`synthetic_prototypes`). With the default
    ``n_clusters``, ``shape`` and ``noise`` it equals
    ``load_dataset("synthetic", split="train", n=n, seed=seed)``.

    Parameters
    ----------
    n : int ≥ 1, default 512
        Number of samples.
    n_clusters : int ≥ 1, default 4
        Number of prototypes, at most 2^(C·H·W).
    shape : (C, H, W), default (1, 8, 8)
        Image shape, three positive integers.
    noise : float ≥ 0, default 0.1
        Standard deviation of the Gaussian noise.
    seed : int, default 0
        Seeds the prototypes and the samples.
    return_labels : bool, default False
        Also return the labels.

    Returns
    -------
    x : tensor (n, C, H, W), float32, values in [0, 1]
    y : tensor (n,), int64
        Only if ``return_labels``: ``(x, y)``.

    Raises
    ------
    ValueError
        Naming ``n`` or ``n_clusters`` when it is not an integer ≥ 1, ``shape`` when it is not
        three positive integers, ``noise`` when it is not a finite number ≥ 0, and when
        ``n_clusters`` exceeds the 2^(C·H·W) binary images.

    See also
    --------
    synthetic_prototypes, load_dataset; chapter 1.
    """
    x, y = _synthetic(n, n_clusters=n_clusters, shape=shape, noise=noise, seed=seed, stream=0)
    return (x, y) if return_labels else x


def synthetic_prototypes(
    n_clusters: int = 4, *, shape: tuple[int, int, int] = (1, 8, 8), seed: int = 0
) -> torch.Tensor:
    """The binary prototypes behind :func:`make_synthetic` with the same seed (chapter 1).

    Used in chapter 1 to compare learned codebooks with the true cluster
    centres; shape ``(n_clusters, *shape)``.
    The prototypes are ``n_clusters`` distinct images with pixels in {0, 1}, each pixel a fair
    coin, drawn from ``seed`` until ``n_clusters`` distinct ones are found, then shuffled so
    that cluster ids carry no order.

    Parameters
    ----------
    n_clusters : int ≥ 1, default 4
        Number of prototypes, at most 2^(C·H·W).
    shape : (C, H, W), default (1, 8, 8), keyword-only
        Image shape, three positive integers.
    seed : int, default 0, keyword-only
        The seed given to :func:`make_synthetic`.

    Returns
    -------
    tensor (n_clusters, C, H, W), float32, values in {0, 1}

    Raises
    ------
    ValueError
        Naming ``n_clusters`` when it is not an integer ≥ 1, ``shape`` when it is not three
        positive integers, and when ``n_clusters`` exceeds the 2^(C·H·W) binary images.

    See also
    --------
    make_synthetic; chapter 1.
    """
    _check_count(n_clusters, "n_clusters")
    shape = _check_shape(shape)
    return torch.from_numpy(_prototypes(n_clusters, shape, seed))


def check_images(x, *, name: str = "x", in_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Check that ``x`` is a batch of images (N, C, H, W) with finite values in [0, 1] (chapter 1 onwards).

    Used across the library from chapter 1 onwards to validate inputs.
    Accepts a torch tensor or a numpy array of floating dtype and returns it
    as a float32 tensor; raises ``ValueError`` naming ``name`` otherwise.
    ``in_shape`` optionally fixes ``(C, H, W)``.
    With x and the decoder's x̂ in [0, 1], the loss ‖x − x̂‖²/d lies in [0, 1], as every bound
    needs: so N ≥ 1, 4 dimensions and every value finite with 0 ≤ x ≤ 1. Integer arrays are
    refused rather than rescaled.

    Parameters
    ----------
    x : tensor or numpy array (N, C, H, W), floating dtype
        The images.
    name : str, default "x", keyword-only
        The argument's name in error messages.
    in_shape : (C, H, W), optional, keyword-only
        The image shape ``x`` must have.

    Returns
    -------
    tensor (N, C, H, W), float32
        ``x`` as a float32 tensor (a numpy array's memory is shared where no cast is needed).

    Raises
    ------
    ValueError
        Naming ``name`` when ``x`` is not a tensor or numpy array of floating dtype, not 4-D,
        empty, of another image shape than ``in_shape``, not finite, or outside [0, 1].

    See also
    --------
    load_dataset, vqlib.bounds.supersample.make_supersample; chapter 1.
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must have a floating dtype, got numpy {x.dtype}")
        x = torch.from_numpy(x)
    elif isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    else:
        raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")

    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if in_shape is not None and tuple(x.shape[1:]) != tuple(in_shape):
        raise ValueError(
            f"{name} has image shape {tuple(x.shape[1:])}, expected {tuple(in_shape)}"
        )
    values = x.detach()
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = values.min().item(), values.max().item()
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must lie in [0, 1], found min {lo:.4g} and max {hi:.4g}")
    return x.to(torch.float32)


def train_test_split(x: torch.Tensor | np.ndarray, n_train: int, *, seed: int = 0):
    """Split ``x`` along its first axis into disjoint random parts (chapter 1 onwards).

    Used from chapter 1 onwards to hold out data for the generalization gap.
    Returns ``(x_train, x_test)`` with ``n_train`` and ``len(x) - n_train``
    items; the same ``seed`` always gives the same split.
    The training indices are the first ``n_train`` of a uniform random permutation of
    range(N) (numpy's ``default_rng(seed)``), the test indices the rest; each part keeps
    the order of ``x``. Both parts are non-empty.

    Parameters
    ----------
    x : tensor or numpy array (N, ...)
        The data, N ≥ 2.
    n_train : int in [1, N − 1]
        Size of the training part.
    seed : int, default 0, keyword-only
        Seed of the permutation.

    Returns
    -------
    (x_train, x_test) : tuple, shapes (n_train, ...) and (N − n_train, ...)
        Of the type of ``x``.

    Raises
    ------
    ValueError
        Naming ``n_train`` when it is not an integer in [1, N − 1].

    See also
    --------
    load_dataset, vqlib.bounds.supersample.make_supersample; chapter 1.
    """
    n_train = _check_count(n_train, "n_train", high=len(x) - 1)
    order = _permutation(len(x), seed)
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    if isinstance(x, torch.Tensor):
        train, test = torch.from_numpy(train), torch.from_numpy(test)
    return x[train], x[test]


# --- helpers ---------------------------------------------------------------


def _default_root() -> Path:
    return Path(os.environ.get("VQLIB_DATA") or Path.home() / ".cache" / "vqlib" / "data")


def _check_count(value, name: str, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 1 or (high is not None and value > high):
        bound = "at least 1" if high is None else f"between 1 and {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _check_shape(shape) -> tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3 or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape
    ):
        raise ValueError(f"shape must be three positive integers (C, H, W), got {shape}")
    return shape


def _permutation(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _prototypes(n_clusters: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    size = int(np.prod(shape))
    if n_clusters > 2**size:
        raise ValueError(
            f"n_clusters={n_clusters} exceeds the {2**size} binary images of shape {shape}"
        )
    rng = np.random.default_rng([seed, 0])
    protos = np.empty((0, size), dtype=np.float32)
    while len(protos) < n_clusters:
        draw = (rng.random((n_clusters, size)) < 0.5).astype(np.float32)
        protos = np.unique(np.concatenate([protos, draw]), axis=0)
    # np.unique sorts; shuffle back so that cluster ids carry no order.
    protos = protos[rng.permutation(len(protos))[:n_clusters]]
    return protos.reshape(n_clusters, *shape)


def _synthetic(
    n: int,
    *,
    n_clusters: int = 4,
    shape: tuple[int, int, int] = (1, 8, 8),
    noise: float = 0.1,
    seed: int = 0,
    stream: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    n = _check_count(n, "n")
    n_clusters = _check_count(n_clusters, "n_clusters")
    shape = _check_shape(shape)
    real = isinstance(noise, numbers.Real) and not isinstance(noise, bool)
    if not real or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    protos = _prototypes(n_clusters, shape, seed)
    rng = np.random.default_rng([seed, 1 + stream])
    labels = rng.integers(n_clusters, size=n)
    x = protos[labels] + noise * rng.standard_normal((n, *shape))
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # scikit-learn loads slowly: only for the digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    if split == "all":
        return x, y
    order = _permutation(len(x), 0)
    part = order[:_DIGITS_N_TRAIN] if split == "train" else order[_DIGITS_N_TRAIN:]
    part = np.sort(part)
    return x[part], y[part]


def _expected_files(key: str, base: Path, split: str) -> list[Path]:
    folder = base / _TORCHVISION[key][0]
    if key == "cifar10":
        train = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test = [folder / "test_batch"]
    else:
        folder = folder / "raw"
        train = [folder / "train-images-idx3-ubyte", folder / "train-labels-idx1-ubyte"]
        test = [folder / "t10k-images-idx3-ubyte", folder / "t10k-labels-idx1-ubyte"]
    return {"train": train, "test": test, "all": train + test}[split]


def _find(path: Path) -> Path | None:
    """The file itself, or its ``.gz`` version, whichever exists first."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _missing_message(key: str, base: Path, missing: list[Path]) -> str:
    listing = "\n".join(f"  {p}" for p in missing)
    gz = "" if key == "cifar10" else " (or the same names ending in .gz)"
    return (
        f"dataset {key!r} not found: expected these files{gz}:\n{listing}\n"
        f"Pass download=True to fetch them with torchvision, but this machine may be "
        f"offline; otherwise place the files there by hand (torchvision's layout under "
        f"root={str(base)!r}, or set VQLIB_DATA). The dataset \"digits\" needs no files "
        f"and is the default offline dataset."
    )


def _load_files(key: str, base: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    expected = _expected_files(key, base, split)
    missing = [p for p in expected if _find(p) is None]
    if missing and download:
        _download(key, base, split, _missing_message(key, base, missing))
        missing = [p for p in expected if _find(p) is None]
    if missing:
        raise FileNotFoundError(_missing_message(key, base, missing))
    files = [_find(p) for p in expected]

    if key == "cifar10":
        parts = [_read_cifar_batch(f) for f in files]
    else:
        parts = [
            (_read_idx(images, _IDX_IMAGES), _read_idx(labels, _IDX_LABELS))
            for images, labels in zip(files[::2], files[1::2])
        ]
        for (images, labels), path in zip(parts, files[::2]):
            if len(images) != len(labels):
                raise ValueError(f"{path}: {len(images)} images but {len(labels)} labels")
        parts = [(images[:, None], labels) for images, labels in parts]

    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    return (x / np.float32(255)).astype(np.float32, copy=False), y


def _download(key: str, base: Path, split: str, message: str) -> None:
    try:
        import torchvision  # optional: only to download
    except ImportError:
        raise FileNotFoundError(
            message + "\ndownload=True needs torchvision, which is not installed."
        ) from None
    dataset = getattr(torchvision.datasets, _TORCHVISION[key][1])
    try:
        for train in {"train": [True], "test": [False], "all": [True, False]}[split]:
            dataset(str(base), train=train, download=True)
    except Exception as err:
        raise RuntimeError(f"download of {key!r} failed ({err})\n{message}") from err


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) with the given magic number."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read IDX file ({err})") from err
    if len(raw) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise ValueError(
            f"{path}: IDX header announces shape {dims} ({size} bytes) "
            f"but the file holds {len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle plain containers and numpy arrays only, never arbitrary objects."""

    _allowed = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core"):  # pickles written by numpy < 2
            module = "numpy._core" + module[len("numpy.core") :]
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: (N, 3, 32, 32) uint8 images and labels."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as err:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: expected a dict with keys b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)
