"""Sample images contributed to File > Open Sample."""

from __future__ import annotations

import numpy as np
import pytest

from napari_kmeans_quantize import _sample_data


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_sample_is_one_rgb_image(name):
    [(data, meta, layer_type)] = getattr(_sample_data, name)()
    assert layer_type == "image"
    assert meta == {"name": name, "rgb": True}
    assert data.dtype == np.uint8 and data.ndim == 3 and data.shape[-1] == 3
    # colourful: many distinct colours
    assert len(np.unique(data.reshape(-1, 3), axis=0)) > 10_000


def test_samples_open_from_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    for key in ("astronaut", "coffee", "chelsea"):
        viewer.open_sample("napari-kmeans-quantize", key)
    assert [layer.name for layer in viewer.layers] == ["astronaut", "coffee", "chelsea"]
    assert all(layer.rgb for layer in viewer.layers)
