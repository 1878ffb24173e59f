"""Progress generators: every long step is a generator of 0..1 fractions whose
return value is its result, so that callers can show progress and cancel."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def drain(
    gen: Generator[float, None, T], progress: Callable[[float], Any] | None = None
) -> T:
    """Run a progress generator to its end and return its value, passing every
    fraction to `progress` (if given)."""
    while True:
        try:
            fraction = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(fraction)


def scaled(
    gen: Generator[float, None, T], lo: float, hi: float
) -> Generator[float, None, T]:
    """Re-yield a sub-generator's 0..1 fractions inside [lo, hi]."""
    while True:
        try:
            frac = next(gen)
        except StopIteration as stop:
            return stop.value
        yield lo + (hi - lo) * frac
