"""The argument checks every plain-PyTorch module shares, written once.

Each raises :class:`ltcl.errors.ConfigError` naming the value, what it must be, and the fix, so
that a bad setting fails before any data is read or step is taken.
"""

from __future__ import annotations

import math
from typing import Any

from ltcl.errors import ConfigError


def check_int(value: Any, name: str, minimum: int = 0, fix: str = "") -> int:
    """An int (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{name} must be an integer >= {minimum}, got {value!r}" + (f"; {fix}" if fix else "")
        )
    return int(value)


def check_positive(value: Any, name: str, fix: str = "", allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with allow_zero)."""
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(
            f"{name} must be a finite number {bound}, got {value!r}" + (f"; {fix}" if fix else "")
        )
    return number


def check_probability(value: Any, name: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"{name} = {value} is not a probability; use a value in [0, 1]")
    return number


def check_decay(value: Any, name: str) -> float:
    """An EMA decay (momentum) in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ConfigError(
            f"{name} must be in [0, 1) (an EMA decay; 0.97 in COLT and BCL), got {value!r}"
        )
    return float(value)


def check_temperature(
    value: Any, name: str = "temperature", fix: str = "docs/method.md uses 0.2"
) -> float:
    """A softmax temperature: > 0 (the contrastive losses' tau)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}; {fix}")
    return float(value)
