"""Colourful sample images bundled with scikit-image (File > Open Sample)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["astronaut", "chelsea", "coffee"]


def _sample(name: str) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    from skimage import data

    image = getattr(data, name)()
    return [(image, {"name": name, "rgb": True}, "image")]


def astronaut() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Eileen Collins, 512 x 512 RGB (scikit-image ``data.astronaut``)."""
    return _sample("astronaut")


def coffee() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """A cup of coffee, 400 x 600 RGB (scikit-image ``data.coffee``)."""
    return _sample("coffee")


def chelsea() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Chelsea the cat, 300 x 451 RGB (scikit-image ``data.chelsea``)."""
    return _sample("chelsea")
