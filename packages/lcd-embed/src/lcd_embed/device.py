"""The one device rule of the LCD torch packages: ``"auto"`` is CUDA when available, else the CPU."""

from __future__ import annotations

import os
from typing import Any

from lcd_core import ConfigError


def resolve_device(device: Any = "auto") -> Any:
    """The ``torch.device`` a run uses.

    Parameters
    ----------
    device
        ``"auto"`` (or ``None``): ``cuda`` when CUDA is available, else ``cpu``. ``"cuda"`` without an
        index is this process's GPU under torchrun (``cuda:LOCAL_RANK``, ``cuda:0`` otherwise).
        Anything else (``"cpu"``, ``"cuda:1"``, a ``torch.device``) is taken as it is.

    Returns
    -------
    torch.device

    Raises
    ------
    lcd_core.ConfigError
        CUDA was asked for but is not available, or the name is not a device.
    """
    import torch

    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"device: {device!r} is not a device; use auto, cpu, cuda or cuda:<index>"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} requested but CUDA is not available; use auto or cpu")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return dev
