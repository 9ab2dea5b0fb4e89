"""Range checks of numeric options: an out-of-range value is one line naming the option, never a result.

``--threshold 2``, ``--threshold nan`` and a negative ``n_draws`` used to run and return numbers; the
public functions check their options here before reading any data.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from lcd_core import InputError


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """``value`` as an int, refusing bools, floats with a fraction, strings and values below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float inside ``[low, high]`` (an open end with ``low_open``/``high_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r}")
    x = float(value)
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    inside = (x > low if low_open else x >= low) and (x < high if high_open else x <= high)
    if not math.isfinite(x) or not inside:
        raise InputError(f"{name} must be a finite number in {left}{low:g}, {high:g}{right}, got {value!r}")
    return x


def check_seed(value: Any) -> int:
    """A seed for :func:`numpy.random.default_rng`: a non-negative integer."""
    return check_int("seed", value, minimum=0)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
