"""Argument checks shared by the library: each raises ``ValueError`` naming the argument.

Scalars (:func:`positive_int`, :func:`positive_float`, :func:`unit_float`,
:func:`check_seed`, :func:`choice`, :func:`flag`), containers (:func:`mapping`), arrays
(:func:`real_array`, :func:`unit_array`, :func:`binary_array`, :func:`distributions`,
:func:`index_array`) and resources (:func:`fits_in_memory`, :func:`fits`): every public function
of the library validates its input with these before computing, so bad input gives one
clear error instead of a NaN, a silently cast value or an error from deep inside numpy
or torch.
"""
from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Mapping

import numpy as np

#: Seeds lie in [0, SEED_MAX]: what torch's and numpy's generators both accept.
SEED_MAX = 2**63 - 1
#: Tolerance on the sums of probability vectors (float32 posteriors of K ≤ 4096 codes pass).
PROB_ATOL = 1e-4


def short(value) -> str:
    """``repr(value)`` on one line of at most 80 characters, with integers of more than 18 digits written as a
    power of two (``2**2000``): what an error message shows of a bad value."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)) >= 10**18:
        v = int(value)
        sign, bits = ("-" if v < 0 else ""), abs(v).bit_length() - 1
        return f"{sign}2**{bits}" if abs(v) == 1 << bits else f"{sign}about 2**{bits}"
    text = " ".join(repr(value).split())  # one line: an array's repr spans several
    return text if len(text) <= 80 else text[:77] + "..."


def positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int, or ``ValueError`` naming ``name`` if it is not an int in [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {short(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {short(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {short(maximum)}, got {short(value)}")
    return int(value)


def flag(value, name: str) -> bool:
    """``value`` as a bool (``True``, ``False`` or a numpy bool), or ``ValueError`` naming ``name``.

    Strings (``"no"`` is truthy), numbers and ``None`` are refused rather than read by their truth value.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {short(value)}")
    return bool(value)


def mapping(value, name: str) -> dict:
    """``value`` as a dict (``None`` gives ``{}``), or ``ValueError`` naming ``name`` if it is not a mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict, got {type(value).__name__} {short(value)}")
    return dict(value)


def check_seed(value, name: str = "seed") -> int:
    """``value`` as a seed: an int in [0, 2**63 − 1], or ``ValueError`` naming ``name``.

    Floats (``1.5``), ``None`` and seeds torch cannot take (``2**64``) are refused
    rather than truncated or passed on to fail inside torch.
    """
    value = positive_int(value, name, minimum=0)
    if value > SEED_MAX:
        raise ValueError(f"{name} must be at most 2**63 - 1, got {short(value)}")
    return value


def renamed(new_value, old_value, new: str, old: str, where: str, default=None):
    """The value of argument ``new`` of ``where`` given either as ``new`` or, deprecated, as ``old``
    (chapters 1–4, 8: the seeds of the training functions).

    The book names every seed after what it draws (``train_seed`` for one model,
    ``train_seeds`` for one per model, ``supersample_seeds``, ``mask_seeds``, ...); the old
    names of :func:`vqlib.fit`, :func:`vqlib.models.fit_ensemble` and
    :func:`vqlib.run_supersample` still work for one release, with a ``DeprecationWarning``.
    ``old_value`` None means the old name was not used; both names with different values
    are a ``ValueError``.
    """
    if old_value is None:
        return new_value

    warnings.warn(f"{where}({old}=...) is deprecated and will be removed in the next release; use {new}=...",
                  DeprecationWarning, stacklevel=3)
    def differs(a, b) -> bool:
        try:
            return bool(a != b)
        except (TypeError, ValueError, RuntimeError):  # arrays: compared by identity
            return a is not b

    if new_value is not None and differs(new_value, default) and differs(new_value, old_value):
        raise ValueError(f"{where} got both {new}={new_value!r} and its deprecated name {old}={old_value!r}")
    return old_value


def _real(value, name: str, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {what}, got {short(value)}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float range
        raise ValueError(f"{name} must be {what}, got {short(value)} (too large for a float)") from None


def real_number(value, name: str) -> float:
    """``value`` as a float (any real number, inf and NaN included), or ``ValueError`` naming ``name``."""
    return _real(value, name, "a number")


def positive_float(value, name: str) -> float:
    """``value`` as a finite float > 0, or ``ValueError`` naming ``name``."""
    value = _real(value, name, "a positive number")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def nonnegative_float(value, name: str) -> float:
    """``value`` as a finite float ≥ 0, or ``ValueError`` naming ``name``."""
    value = _real(value, name, "a finite number ≥ 0")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    return value


def unit_float(value, name: str, *, open_left: bool = False, open_right: bool = False) -> float:
    """``value`` as a float in [0, 1] (ends optionally open), or ``ValueError`` naming ``name``."""
    value = _real(value, name, "a number in [0, 1]")
    low_bad = value <= 0 if open_left else value < 0
    high_bad = value >= 1 if open_right else value > 1
    if not math.isfinite(value) or low_bad or high_bad:
        left, right = "(" if open_left else "[", ")" if open_right else "]"
        raise ValueError(f"{name} must lie in {left}0, 1{right}, got {value!r}")
    return value


def choice(value, name: str, options) -> str:
    """``value`` if it is one of ``options``, else ``ValueError`` naming ``name``."""
    try:
        known = value in options
    except (TypeError, ArithmeticError):  # an unhashable value against a set of options; Decimal('sNaN')
        known = False
    if not known:
        raise ValueError(f"{name}={value!r} is not one of {tuple(options)}")
    return value


# --------------------------------------------------------------------------- arrays


def _tensor_to_numpy(value, name: str) -> np.ndarray:
    """A torch tensor's values as a numpy array: detached (a tensor that requires grad is data too),
    on the CPU, and in a dtype numpy has (bfloat16 and float8 widened exactly to float32)."""
    value = value.detach()
    if getattr(value, "is_complex", lambda: False)():
        raise ValueError(f"{name} must hold real numbers, got complex dtype {value.dtype}")
    try:
        value = value.cpu()
        try:
            return value.numpy()
        except TypeError:  # a dtype numpy has no equivalent for (bfloat16, float8): widened, exactly
            return value.float().numpy()
    except (RuntimeError, NotImplementedError) as err:  # a tensor with no data (the meta device), ...
        raise ValueError(f"{name} is a tensor whose values cannot be read ({str(err).splitlines()[0]})") from None


def _object_detail(raw: np.ndarray) -> str:
    """Why an object array is not numbers: a number too large for a float, or what it holds."""
    for v in raw.flat[:10**6]:
        if isinstance(v, numbers.Integral) and not isinstance(v, bool) and abs(int(v)) > 2**1023:
            return f" holding {short(v)}, a value too large for a float"
    return ""


def real_array(value, name: str, *, ndim: int | None = None, finite: bool = True,
               allow_empty: bool = False, allow_bool: bool = True) -> np.ndarray:
    """``value`` (array, list, tensor) as a float64 array of real numbers, or ``ValueError``.

    Refused, naming ``name``: what is not numbers (strings, objects, ragged lists, numbers
    too large for a float), complex numbers (never silently cut to their real part), a
    number of dimensions other than ``ndim`` (when given), an empty array (unless
    ``allow_empty``), NaN or infinite entries (unless ``finite=False``), booleans where
    numbers are meant (unless ``allow_bool``: mask bits and labels may be booleans, counting
    as 0 and 1), and an array whose float64 copy would not fit in this machine's memory (a
    broadcast view of a huge shape, say), before it is made. A tensor is detached first
    (its values are the data; one that requires grad is accepted).
    """
    if hasattr(value, "detach") and callable(value.detach):  # a torch tensor
        value = _tensor_to_numpy(value, name)
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError, OverflowError):  # ragged nested lists, objects numpy cannot hold
        raise ValueError(f"{name} must be an array of numbers, got a ragged sequence or {type(value).__name__}") \
            from None
    if raw.dtype.kind == "c":
        raise ValueError(f"{name} must hold real numbers, got complex dtype {raw.dtype}")
    if raw.dtype.kind == "b" and not allow_bool:
        raise ValueError(f"{name} must hold numbers, not booleans (dtype bool): cast them first if they are "
                         f"numbers, e.g. with .astype(float)")
    if raw.dtype.kind not in "biuf":
        detail = _object_detail(raw) if raw.dtype.kind == "O" else ""
        raise ValueError(f"{name} must be an array of numbers, got dtype {raw.dtype}{detail}")
    if ndim is not None and raw.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {raw.shape}")
    if raw.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {raw.shape}")
    fits_in_memory(8 * raw.size, f"{name} of shape {raw.shape}", need="as float64")
    with np.errstate(over="ignore"):  # huge ints or float128 beyond float64 become inf: caught below
        arr = raw.astype(np.float64)
    if finite and not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinite values"
        raise ValueError(f"{name} must be finite, found {bad}")
    return arr


def unit_array(value, name: str, **kwargs) -> np.ndarray:
    """:func:`real_array` with every entry in [0, 1] (losses), or ``ValueError`` naming ``name``."""
    arr = real_array(value, name, **kwargs)
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], found values in [{arr.min():.4g}, {arr.max():.4g}]")
    return arr


def binary_array(value, name: str, **kwargs) -> np.ndarray:
    """:func:`real_array` holding only 0 and 1 (mask bits), as int64, or ``ValueError``."""
    arr = real_array(value, name, **kwargs)
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"{name} must hold only 0 and 1, found {arr[bad].reshape(-1)[0]:g}")
    return arr.astype(np.int64)


def distributions(value, name: str, *, ndim: int | None = None, atol: float = PROB_ATOL,
                  allow_bool: bool = True) -> np.ndarray:
    """Probability vectors along the last axis (float64), or ``ValueError`` naming ``name``.

    Every entry finite and ≥ 0, every vector summing to 1 within ``atol``, a last
    axis of at least one category. The values are returned as given (not renormalised).
    ``allow_bool`` as in :func:`real_array`.
    """
    arr = real_array(value, name, ndim=ndim, allow_bool=allow_bool)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last axis (the categories), got shape {arr.shape}")
    if arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, found {arr.min()!r}")
    sums = arr.sum(-1)
    worst = float(np.abs(sums - 1).max())
    if worst > atol:
        raise ValueError(f"{name} must sum to 1 over its last axis (tolerance {atol:g}), "
                         f"found a sum off by {worst:.3g}")
    return arr


def index_array(value, name: str) -> np.ndarray:
    """Integer indices (ints, or floats with integral values) as int64, or ``ValueError`` naming ``name``.

    Booleans are refused (a boolean array indexes as a mask, not as positions), as are complex
    numbers, strings, NaN and non-integral floats.
    """
    if hasattr(value, "detach") and callable(value.detach):
        value = _tensor_to_numpy(value, name)
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"{name} must be an array of integers, got a ragged sequence") from None
    if raw.dtype.kind == "b":
        raise ValueError(f"{name} must hold integers, not booleans (a boolean array is a mask, not positions)")
    if raw.dtype.kind in "iu":
        if raw.dtype.kind == "u" and raw.size and raw.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} holds integers beyond int64")
        return raw.astype(np.int64)
    arr = real_array(raw, name, allow_empty=True)
    if not np.all(arr == np.round(arr)) or (arr.size and np.abs(arr).max() >= 2.0**63):
        raise ValueError(f"{name} must hold integers, found non-integral values")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------- resources


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say."""

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def _gib(n_bytes: int) -> str:
    try:
        return f"{n_bytes / 2**30:.3g}"
    except OverflowError:  # more bytes than a float holds
        return f"about 2**{int(n_bytes).bit_length() - 31}"


def fits(n_bytes: int) -> bool:
    """Whether ``n_bytes`` fit in this machine's memory (True where the system does not say)."""
    total = memory_bytes()
    return total is None or n_bytes <= total


def fits_in_memory(n_bytes: int, what: str, *, need: str = "for its weights alone") -> None:
    """``ValueError`` when ``what`` needs ``n_bytes`` (``need`` says for what), more than this machine's memory."""
    total = memory_bytes()
    if total is not None and n_bytes > total:
        raise ValueError(f"{what} needs about {_gib(n_bytes)} GiB {need}, more than this "
                         f"machine's {total / 2**30:.3g} GiB of memory")
