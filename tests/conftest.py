"""Shared fixtures for the napari-side tests (real viewers under Xvfb)."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from napari_kmeans_quantize import _layers, _widget


def _data_hash(array) -> str:
    array = np.ascontiguousarray(np.asarray(array))
    digest = hashlib.sha256(array.tobytes())
    digest.update(repr((array.shape, array.dtype.str)).encode())
    return digest.hexdigest()


@pytest.fixture
def data_hash():
    """SHA-256 of an array's bytes, shape and dtype (to prove it was not modified)."""
    return _data_hash


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture
def small_rgb() -> np.ndarray:
    """A 48 x 64 uint8 RGB image with smooth colour ramps (many distinct colours)."""
    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1)
    return image.astype(np.uint8)


@pytest.fixture
def make_widget(make_napari_viewer):
    """Factory: a viewer (optionally shown) with the widget docked in it."""

    def factory(show: bool = False, **viewer_kwargs):
        viewer = make_napari_viewer(show=show, **viewer_kwargs)
        widget = _widget.QuantizeWidget(viewer)
        viewer.window.add_dock_widget(widget, name="K-means Quantise")
        return viewer, widget

    return factory


@pytest.fixture
def wait_idle(qtbot):
    """Wait until a widget's worker has finished (and its signals were handled)."""

    def wait(widget, timeout: int = 30_000) -> None:
        qtbot.waitUntil(lambda: not widget.is_running, timeout=timeout)
        qtbot.wait(20)

    return wait


@pytest.fixture
def slow_engine(monkeypatch):
    """Slow the widget's computation down (a pause after every progress step).

    The real computation still runs underneath; ``calls["yields"]`` counts the
    progress steps actually computed, so a test can see that a cancelled run
    really stopped.
    """
    return slow_down(monkeypatch, "quantize_source_iter", 0.15)


def drain(gen):
    """Run a progress generator to its end; return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def slow_down(monkeypatch, name: str, delay: float, module=_widget) -> dict:
    """Make ``module.name`` (a progress generator) pause after every step.

    Returns the counters: ``"yields"`` (steps computed) and ``"delay"`` (seconds,
    may be changed while the generator runs).
    """
    calls = {"yields": 0, "delay": delay}
    original = getattr(_layers, name)

    def slow_iter(*args, **kwargs):
        gen = original(*args, **kwargs)
        while True:
            try:
                fraction = next(gen)
            except StopIteration as stop:
                return stop.value
            calls["yields"] += 1
            time.sleep(calls["delay"])
            yield fraction

    monkeypatch.setattr(module, name, slow_iter)
    return calls


@pytest.fixture
def notifications(monkeypatch):
    """Collect napari notifications (message, severity) dispatched during a test."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []
    original = notification_manager.dispatch

    def dispatch(notification):
        seen.append((str(notification.message), str(notification.severity)))
        return original(notification)

    monkeypatch.setattr(notification_manager, "dispatch", dispatch)
    return seen


def _noisy_photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def photo():
    """Factory ``photo(h=40, w=56, seed=0)``: a photo-like uint8 RGB image (colour
    ramps plus noise, so many distinct colours)."""
    return _noisy_photo


def _cells3d_like() -> np.ndarray:
    """A (60, 2, 256, 256) uint16 stand-in for scikit-image's cells3d.

    Channel 0: 12-bit nuclei (three bright ellipsoids); channel 1: 16-bit
    membranes (a bright mesh). Values are stepped so the stack has a few
    hundred distinct pixel vectors, which keeps the exact fit quick.
    """
    z, y, x = np.ogrid[0:60, 0:256, 0:256]
    nuclei = np.zeros((60, 256, 256))
    for cz, cy, cx, r in [(30, 80, 80, 40), (20, 180, 170, 35), (40, 190, 60, 30)]:
        nuclei += np.exp(
            -(((z - cz) * 3.0) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r)
        )
    nuclei = np.round(nuclei / nuclei.max() * 63) * 64  # 0 .. 4032, 12-bit
    mesh = np.abs(np.sin(x / 12.0)) * np.abs(np.sin(y / 15.0)) + 0 * z
    membranes = np.round((1 - mesh) ** 4 * 15) * 4096  # 0 .. 61440, 16-bit
    return np.stack([nuclei, membranes], axis=1).astype(np.uint16)


@pytest.fixture(scope="session")
def cells() -> np.ndarray:
    """The cells3d-like (60, 2, 256, 256) uint16 stack (z, c, y, x); read only."""
    stack = _cells3d_like()
    stack.flags.writeable = False
    return stack


@pytest.fixture
def channel_layers():
    """Factory ``channel_layers(stack, lazy=False)``: the two channels of a
    (z, 2, y, x) stack as Image layers "nuclei" (magenta, 12-bit limits) and
    "membranes" (green, additive, 16-bit limits, gamma 0.8); dask if `lazy`."""
    from napari.layers import Image

    def factory(stack: np.ndarray, lazy: bool = False) -> list:
        data = [stack[:, 0], stack[:, 1]]
        if lazy:
            import dask.array as da

            data = [da.from_array(d, chunks=(15, 128, 128)) for d in data]
        common = {"scale": (0.29, 0.26, 0.26)}
        return [
            Image(
                data[0],
                name="nuclei",
                colormap="magenta",
                contrast_limits=(0, 4095),
                **common,
            ),
            Image(
                data[1],
                name="membranes",
                colormap="green",
                blending="additive",
                contrast_limits=(0, 65535),
                gamma=0.8,
                **common,
            ),
        ]

    return factory
