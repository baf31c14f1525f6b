"""Where tensors live: the one place the book and the library choose a device.

Every chapter's setup cell and every training call go through :func:`default_device`,
so no code in this project names ``"cuda"`` itself.
"""
from __future__ import annotations

import os

import torch

__all__ = ["default_device", "resolve_device", "has_accelerator"]


def has_accelerator() -> bool:
    """True when a CUDA (or Apple MPS) device can be used (chapter setup cells).

    ``torch.cuda.is_available()`` or, where torch has the MPS backend,
    ``torch.backends.mps.is_available()``. It ignores ``VQLIB_DEVICE``. Unless ``VQLIB_PROFILE``
    says otherwise, the profile (:func:`vqlib.sweeps.current_profile`) is ``quick`` on CI or
    without an accelerator and ``full`` with one.

    Returns
    -------
    bool

    See also
    --------
    default_device, resolve_device, vqlib.sweeps.current_profile; chapters 1–9.
    """
    if torch.cuda.is_available():
        return True
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def default_device() -> torch.device:
    """The device the book trains on: ``VQLIB_DEVICE`` if set, else CUDA, MPS, CPU (every chapter's setup cell).

    Used by every chapter's setup cell and as the default of :func:`vqlib.fit`.
    The order is: a non-blank ``VQLIB_DEVICE`` (checked by :func:`resolve_device`), then the
    first of CUDA, MPS and CPU that is available.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        When ``VQLIB_DEVICE`` names a device that :func:`resolve_device` refuses (the message
        names ``VQLIB_DEVICE``). Every sweep calls this before it computes, training or not.

    See also
    --------
    resolve_device, has_accelerator; chapters 1–9.
    """
    wanted = os.environ.get("VQLIB_DEVICE", "").strip()
    if wanted:
        try:
            return resolve_device(wanted)
        except ValueError as err:
            raise ValueError(f"VQLIB_DEVICE={wanted!r}: {err}") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``None`` (the default device), a name or a ``torch.device`` into a device (chapters 1–9).

    Raises ``ValueError`` naming ``device`` when the name is not a torch device, when
    it is not one vqlib trains on (``cpu``, ``cuda``, ``mps``; ``meta`` holds no data),
    or when it names an accelerator that this machine does not have (``cuda:3`` on a machine
    with one GPU included).
    :func:`vqlib.fit`, :func:`vqlib.models.fit_ensemble` and ``python -m vqlib run --device`` pass
    their device through here, so a bad device is refused before anything is trained.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` for :func:`default_device`; else a torch device name such as ``"cpu"``,
        ``"cuda"``, ``"cuda:1"`` or ``"mps"``, or a ``torch.device``.

    Returns
    -------
    torch.device
        Of type ``cpu``, ``cuda`` or ``mps``.

    Raises
    ------
    ValueError
        Naming ``device`` as above.

    See also
    --------
    default_device, has_accelerator, vqlib.fit; chapters 1–9.
    """
    if device is None:
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device name") from err
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not a device vqlib can train on; use 'cpu', 'cuda' or 'mps'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} asks for CUDA device {dev.index}, but this machine has "
                         f"{torch.cuda.device_count()} (cuda:0 … cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device={device!r} asks for MPS, but MPS is not available")
    return dev
