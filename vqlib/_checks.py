"""Argument checks shared by the library: each raises ``ValueError`` naming the argument."""
from __future__ import annotations

import math
import numbers


def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int, or ``ValueError`` naming ``name`` if it is not an int ≥ minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value)


def positive_float(value, name: str) -> float:
    """``value`` as a finite float > 0, or ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def unit_float(value, name: str, *, open_left: bool = False, open_right: bool = False) -> float:
    """``value`` as a float in [0, 1] (ends optionally open), or ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    low_bad = value <= 0 if open_left else value < 0
    high_bad = value >= 1 if open_right else value > 1
    if not math.isfinite(value) or low_bad or high_bad:
        left, right = "(" if open_left else "[", ")" if open_right else "]"
        raise ValueError(f"{name} must lie in {left}0, 1{right}, got {value!r}")
    return value


def choice(value, name: str, options) -> str:
    """``value`` if it is one of ``options``, else ``ValueError`` naming ``name``."""
    if value not in options:
        raise ValueError(f"{name}={value!r} is not one of {tuple(options)}")
    return value
