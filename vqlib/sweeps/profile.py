"""Quick and full profiles: how big each chapter's experiments are.

The quick profile runs the whole book on two CPU cores (CI, laptops, a free Colab CPU);
the full profile is for a GPU. The choice is automatic and one environment variable,
``VQLIB_PROFILE=quick|full``, overrides it. Every chapter's setup cell calls
:func:`current_profile` and prints what it chose.
"""
from __future__ import annotations

import os
from typing import TypeVar

from ..device import has_accelerator

__all__ = ["PROFILES", "current_profile", "pick"]

PROFILES = ("quick", "full")
T = TypeVar("T")


def current_profile() -> str:
    """The book's profile: ``VQLIB_PROFILE`` if set, else quick or full (every chapter).

    ``"quick"`` when ``CI`` is set or no GPU is present, else ``"full"``.

    Returns
    -------
    str
        ``"quick"`` or ``"full"``.

    Raises
    ------
    ValueError
        Naming ``VQLIB_PROFILE`` for any other value (case and spaces aside).

    See also
    --------
    pick, vqlib.sweeps.Sweep.config; every chapter.
    """
    forced = os.environ.get("VQLIB_PROFILE", "").strip().lower()
    if forced:
        if forced not in PROFILES:
            raise ValueError(f"VQLIB_PROFILE={forced!r} is not one of {PROFILES}")
        return forced
    if os.environ.get("CI") or not has_accelerator():
        return "quick"
    return "full"


def pick(quick: T, full: T, profile: str | None = None) -> T:
    """The value for the current (or given) profile: ``pick(quick=20, full=200)`` (every chapter).

    Parameters
    ----------
    quick : object
        The value for the quick profile.
    full : object
        The value for the full profile.
    profile : str, optional
        ``"quick"`` or ``"full"`` (default :func:`current_profile`).

    Returns
    -------
    object
        ``quick`` or ``full``.

    Raises
    ------
    ValueError
        When ``profile`` is not one of :data:`PROFILES`, or as :func:`current_profile`.

    See also
    --------
    current_profile; every chapter.
    """
    profile = current_profile() if profile is None else profile
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not one of {PROFILES}")
    return quick if profile == "quick" else full
