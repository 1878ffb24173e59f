"""The options of a quantisation: one frozen object, every check in one place.

The public functions get their keyword-only signatures, with the defaults
below, from ``api.with_options`` and build a :class:`QuantizeOptions`;
everything after that reads the checked, normalised values from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..colorspace import COLOR_SPACES

#: The largest palette a result can hold (labels are stored as uint16).
MAX_COLORS = 65536
#: The palette sizes a sweep compares by default: 2, 4, 8, ..., 256.
DEFAULT_KS: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256)
# The defaults of the public signatures, written once.
DEFAULT_COLOR_SPACE = "rgb"
DEFAULT_RANDOM_STATE = 0
DEFAULT_MAX_ITER = 300
DEFAULT_TOL = 1e-4
DEFAULT_INIT = "variance-split"
#: How a fit's centres start: the deterministic divisive split, or
#: scikit-learn's k-means++ seeding (random, hence ``n_init`` restarts).
INITS = ("variance-split", "k-means++")


def label_dtype(n_colors: int) -> np.dtype:
    """The dtype of the labels of a palette of `n_colors` entries."""
    return np.dtype(np.uint8 if n_colors <= 256 else np.uint16)


@dataclass(frozen=True)
class QuantizeOptions:
    """Checked options of one quantisation (or of every k of a sweep).

    Construction checks every value and raises the TypeError or ValueError a
    caller of ``quantize`` sees; the fields then hold normalised values (Python
    ints and floats, never bools passed as numbers).
    """

    n_colors: int
    color_space: str = DEFAULT_COLOR_SPACE
    dither: bool = False
    random_state: int | np.random.Generator | None = DEFAULT_RANDOM_STATE
    max_pixels: int | None = None
    max_iter: int = DEFAULT_MAX_ITER
    tol: float = DEFAULT_TOL
    # Whether 4 channels are RGBA (True) or 4 plain channels; other counts ignore it.
    alpha: bool = True
    # Fit on the channels scaled to unit variance (palette in original units).
    standardize: bool = False
    # Arrays: checked against the image where it is known (weights.py).
    weights: Any = field(default=None, compare=False)
    fixed_colors: Any = field(default=None, compare=False)
    init: str = DEFAULT_INIT
    n_init: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> QuantizeOptions:
        """The options among a public function's parameters (its ``locals()``);
        names that are no option are left out."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "n_colors", check_n_colors(self.n_colors))
        check_option("color_space", self.color_space, COLOR_SPACES)
        set_(self, "dither", check_bool("dither", self.dither))
        check_random_state(self.random_state)
        if self.max_pixels is not None:
            set_(self, "max_pixels", check_positive_int("max_pixels", self.max_pixels))
        set_(
            self, "max_iter", check_positive_int("max_iter", self.max_iter, none=False)
        )
        set_(self, "tol", check_tol(self.tol))
        set_(self, "alpha", check_bool("alpha", self.alpha))
        set_(self, "standardize", check_bool("standardize", self.standardize))
        if self.standardize and self.color_space != "rgb":
            raise ValueError(
                f"standardize=True scales every channel to unit variance, which "
                f"would distort color_space={self.color_space!r}; use it with "
                "color_space='rgb' (channels on different scales), or drop it."
            )
        check_option("init", self.init, INITS)
        set_(self, "n_init", check_positive_int("n_init", self.n_init, none=False))
        if self.n_init > 1 and self.init == DEFAULT_INIT:
            raise ValueError(
                f"n_init={self.n_init} restarts a deterministic fit "
                f"(init={DEFAULT_INIT!r}) to the same result; use init='k-means++' "
                "for restarts from random seeds, or n_init=1."
            )


def check_n_colors(n_colors: object) -> int:
    if isinstance(n_colors, bool) or not isinstance(n_colors, int | np.integer):
        raise TypeError(
            f"n_colors must be an integer between 1 and {MAX_COLORS}, got "
            f"{n_colors!r} of type {type(n_colors).__name__}."
        )
    if not 1 <= n_colors <= MAX_COLORS:
        raise ValueError(
            f"n_colors must be between 1 and {MAX_COLORS}, got {n_colors}."
        )
    return int(n_colors)


def check_positive_int(name: str, value: object, *, none: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        allowed = " or None" if none else ""
        raise ValueError(f"{name} must be a positive integer{allowed}, got {value!r}.")
    return int(value)


def check_tol(tol: object) -> float:
    what = (
        "tol must be a finite number >= 0 (the fit stops when an iteration lowers "
        f"the error by less than this fraction), got {tol!r}."
    )
    if isinstance(tol, bool) or not isinstance(
        tol, int | float | np.integer | np.floating
    ):
        raise TypeError(what)
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(what)
    return float(tol)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_random_state(random_state: object) -> None:
    if random_state is None or isinstance(random_state, np.random.Generator):
        return
    what = (
        "random_state must be None, an integer >= 0 or a numpy Generator, got "
        f"{random_state!r}."
    )
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer):
        raise TypeError(what)
    if random_state < 0:
        raise ValueError(what)


def check_option(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")


def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    if isinstance(ks, int | np.integer):
        ks = (ks,)
    try:
        values = list(ks)
    except TypeError:
        raise TypeError(f"ks must be an iterable of integers, got {ks!r}.") from None
    if not values:
        raise ValueError("ks is empty; give at least one palette size.")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise TypeError(f"ks must hold integers, got {k!r}.")
        if not 1 <= k <= MAX_COLORS:
            raise ValueError(f"every k must be between 1 and {MAX_COLORS}, got {k}.")
    return tuple(sorted({int(k) for k in values}))
