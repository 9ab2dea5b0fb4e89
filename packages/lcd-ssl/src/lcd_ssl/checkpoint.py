"""Atomic training-state checkpoints, loadable with ``torch.load(weights_only=True)``.

Only tensors, numbers, strings, lists, tuples and dicts are stored (RNG states converted to
tensors/tuples), so loading executes no pickle code. Written with lcd-core's atomic writer
(temporary sibling, fsync, the user's umask, rename); a file that is not a training state is a
one-line ``<path> is not an lcd checkpoint: <reason>``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lcd_core import CheckpointError, atomic_write

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
    """Restore the RNG states :func:`capture_rng` returned.

    Parameters
    ----------
    state
        One process's captured states.
    """
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(folder: Path, state: dict[str, Any]) -> Path:
    """Write ``folder/checkpoint.pt`` atomically (temp file in the same folder, fsync, rename).

    Parameters
    ----------
    folder
        The run folder.
    state
        Tensors, numbers, strings and containers only.
    """
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, **state}
    return atomic_write(folder / STATE_FILE, lambda tmp: torch.save(payload, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """Load a training state with ``weights_only=True``.

    Parameters
    ----------
    path
        A ``checkpoint.pt``.

    Raises
    ------
    lcd_core.CheckpointError
        A truncated or damaged file, a pickle holding code, a plain state dict or another format.
    """
    from lcd_embed import load_torch_file

    state = load_torch_file(path)
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} is not an lcd checkpoint: it holds a {type(state).__name__}, not a training state"
        )
    if "format" not in state:
        raise CheckpointError(
            f"{path} is not an lcd checkpoint: a plain state dict without the {FORMAT!r} format key "
            "(export a backbone with lcd_embed.save_checkpoint instead)"
        )
    if state["format"] != FORMAT:
        raise CheckpointError(
            f"{path} is not an lcd checkpoint: format {state['format']!r}, expected {FORMAT!r}"
        )
    return state
