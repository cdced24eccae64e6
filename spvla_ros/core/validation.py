"""Value checks shared by the config dataclasses (each raises ValueError quoting the bad value)."""

from __future__ import annotations

import math


def require_finite(name: str, value: object) -> None:
    """``value`` is a real number (not a bool), neither NaN nor infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def require_finite_fields(obj: object, names: tuple[str, ...]) -> None:
    """:func:`require_finite` for each named attribute of ``obj``."""
    for name in names:
        require_finite(name, getattr(obj, name))


def require_int_at_least(name: str, value: object, minimum: int) -> None:
    """``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
