"""Argument checks shared by the agents: each names the argument and what was expected."""

from __future__ import annotations

import math
import numbers
from typing import Any


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an ``int`` if it is a whole number ``>= minimum`` (``bool`` is refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name}: expected a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed: Any) -> int | None:
    """``seed`` as an ``int`` (a whole number >= 0), or ``None``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"seed: expected a whole number >= 0 or None, got {seed!r}")
    return int(seed)


def check_number(
    name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    """``value`` as a ``float`` if it is a finite real number in the interval from ``low`` to ``high``
    (closed unless ``low_open`` / ``high_open``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        upper = "inf" if math.isinf(high) else f"{high:g}"
        raise ValueError(f"{name}: expected a number in {left}{low:g}, {upper}{right}, got {value!r}")
    return float(value)
