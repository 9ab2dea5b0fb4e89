"""Atomic training-state checkpoints, loadable with ``torch.load(weights_only=True)``.

Only tensors, numbers, strings, lists, tuples and dicts are stored (RNG states converted to
tensors/tuples), so loading executes no pickle code.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "checkpoint.pt"
FORMAT = "lcd-ssl/train-state/1"


def capture_rng() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and python global RNG states of this process."""
    np_state = np.random.get_state()  # noqa: NPY002 (the legacy global state is what we save)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(folder: Path, state: dict[str, Any]) -> Path:
    """Write ``folder/checkpoint.pt`` atomically (temp file in the same folder, fsync, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STATE_FILE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_state(path: Path) -> dict[str, Any]:
    """Load a training state with ``weights_only=True``; a foreign file is an error naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read lcd-ssl checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lcd-ssl training checkpoint (format {FORMAT})")
    return state
