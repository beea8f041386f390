"""LabelMe files that used to get through the parser and break later: a lone surrogate (every
later export failed to encode it), a mask of a quarter-million regions, control characters."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image as PILImage

from annotations.labelme_io import LabelFileError, loads_labelme

TRIANGLE = {"label": "lung", "points": [[2, 2], [30, 4], [10, 30]], "shape_type": "polygon"}


def _file(shapes, **extra) -> dict:
    return {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "a.png",
            "imageData": None, "imageHeight": 400, "imageWidth": 400, **extra}  # fmt: skip


def test_a_lone_surrogate_is_refused_with_a_plain_reason():
    text = json.dumps(_file([{**TRIANGLE, "description": "x"}])).replace('"x"', '"\\ud800"')
    with pytest.raises(LabelFileError, match="invalid character .*lone UTF-16 surrogate"):
        loads_labelme(text, source="s.json")


def test_a_mask_of_too_many_regions_is_refused_before_it_becomes_polygons():
    yy, xx = np.mgrid[:400, :400]
    checker = ((yy % 3) < 2) & ((xx % 3) < 2)  # 17,689 separate 2x2 regions
    buf = io.BytesIO()
    PILImage.fromarray(checker).save(buf, format="PNG")
    mask = {"label": "lung", "shape_type": "mask", "points": [[0, 0], [399, 399]],
            "mask": base64.b64encode(buf.getvalue()).decode()}  # fmt: skip
    start = time.monotonic()
    with pytest.raises(LabelFileError, match="separate regions, over the limit of"):
        loads_labelme(json.dumps(_file([mask])), source="m.json")
    assert time.monotonic() - start < 20


def test_a_label_with_a_control_character_is_refused_by_the_label_set(workspace):
    from core.labels.readers import ensure_label

    with pytest.raises(ValueError, match="control character"):
        ensure_label(workspace, "lung\x00")
