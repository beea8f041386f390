"""The image as the annotator receives it: 16 bits over two PNG channels, decoded exactly;
and the viewer's automatic window for CR/DX (from the histogram, not the header)."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging import Window
from core.imaging.webview import auto_window, decode_web_png, encode_web_png, viewer_window
from core.labels.catalog import image_info, image_pixels


def test_the_real_dicom_round_trips_exactly_through_the_browser_png(
    workspace, import_real_images, dicom_mono1
):
    (image_id,) = import_real_images(workspace, also=[dicom_mono1]).imported
    info = image_info(workspace, image_id)
    pixels = image_pixels(workspace, info)
    web = encode_web_png(pixels, info.value_min, info.value_max)
    assert web.scale == 1.0  # integer values in < 65,536 steps: exact
    assert np.array_equal(decode_web_png(web.png, web.offset, web.scale), pixels)


def test_a_wide_float_range_is_quantised_to_65536_levels():
    rng = np.random.default_rng(0)
    pixels = rng.uniform(-5000.0, 200000.0, (64, 80)).astype(np.float32)
    web = encode_web_png(pixels, float(pixels.min()), float(pixels.max()))
    back = decode_web_png(web.png, web.offset, web.scale)
    step = (float(pixels.max()) - float(pixels.min())) / 65535
    assert np.abs(back - pixels).max() <= step / 2 + 1e-3


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="2-D greyscale"):
        encode_web_png(np.zeros((3, 4, 3)), 0, 1)


def test_auto_window_skips_the_background_and_collimator_plateaus():
    rng = np.random.default_rng(1)
    img = np.zeros((400, 400), np.float32)  # air outside the patient: the darkest plateau
    img[:, 350:] = 4095.0  # a collimator blade: the brightest plateau
    img[50:350, 50:330] = rng.normal(1500, 200, (300, 280))  # the anatomy
    w = auto_window(img)
    assert 900 < w.center - w.width / 2 < 1200 and 1800 < w.center + w.width / 2 < 2100
    # The header's full-range window would spend most grey levels on the plateaus.
    assert viewer_window("DX", img, Window(2048, 4096), Window(0, 1)) == w
    assert viewer_window("MR", img, Window(2048, 4096), Window(0, 1)) == Window(2048, 4096)
    assert viewer_window("MR", img, None, Window(0, 1)) == Window(0, 1)
