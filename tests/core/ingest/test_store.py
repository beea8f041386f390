"""core.ingest.store: lossless packing of modality values, content hashes, atomic files by hash."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from core.ingest.store import (
    THUMB_SIDE,
    content_hash,
    image_relpath,
    quantise,
    read_pixels,
    thumb_relpath,
    write_image,
    write_thumbnail,
)

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.mark.parametrize(
    ("values", "lo", "hi", "dtype"),
    [
        (np.arange(256, dtype=np.float32).reshape(16, 16), 0, 255, np.uint8),
        (np.arange(0, 32768, 128, dtype=np.float32).reshape(16, 16), 0, 32767, np.uint16),
        (np.arange(-2048, 2048, 16, dtype=np.float32).reshape(16, 16), -2048, 2047, np.uint16),
        (
            np.arange(-1024, 64512, 255, dtype=np.float32)[:256].reshape(16, 16),
            -1024,
            64511,
            np.uint16,
        ),
    ],
    ids=["8bit", "15bit", "signed12", "rescaled"],
)
def test_integer_values_round_trip_exactly(tmp_path, values, lo, hi, dtype):
    stored = quantise(values, lo, hi)
    assert stored.array.dtype == dtype
    digest = content_hash(stored)
    rel = write_image(tmp_path, digest, stored)
    back = read_pixels(tmp_path, rel, stored.offset, stored.scale)
    assert back.dtype == np.float32
    assert np.array_equal(back, values)


def test_non_integer_values_quantise_to_16_bits_of_their_range(tmp_path):
    values = np.linspace(0.0, 1.0, 1000, dtype=np.float32).reshape(20, 50)
    stored = quantise(values, 0.0, 1.0)
    assert stored.array.dtype == np.uint16
    back = read_pixels(
        tmp_path, write_image(tmp_path, content_hash(stored), stored), stored.offset, stored.scale
    )
    assert np.abs(back - values).max() <= 1.0 / 65535


def test_content_hash_depends_on_pixels_and_shape_only():
    a = np.arange(64, dtype=np.float32).reshape(8, 8)
    h = content_hash(quantise(a, 0, 255))
    assert HEX64.match(h)
    assert h == content_hash(quantise(a.copy(), 0, 255))
    b = a.copy()
    b[3, 3] += 1
    assert content_hash(quantise(b, 0, 255)) != h
    assert content_hash(quantise(a.reshape(4, 16), 0, 255)) != h  # same bytes, other shape


def test_store_paths_are_hash_only(tmp_path):
    digest = "ab" + "0" * 62
    assert image_relpath(digest) == f"images/ab/{digest}.png"
    assert thumb_relpath(digest) == f"thumbs/ab/{digest}.png"


def test_write_image_is_atomic_and_idempotent(tmp_path):
    stored = quantise(np.full((10, 10), 7, np.float32), 0, 255)
    digest = content_hash(stored)
    rel = write_image(tmp_path, digest, stored)
    path = tmp_path / rel
    first = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    assert write_image(tmp_path, digest, stored) == rel
    assert path.read_bytes() == first and path.stat().st_mtime_ns == mtime  # not rewritten
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith(".tmp-")]
    assert leftovers == []


def test_thumbnail_long_side_and_aspect(tmp_path):
    display = np.tile((np.arange(400) % 256).astype(np.uint8)[None], (300, 1))
    rel = write_thumbnail(tmp_path, "cd" + "1" * 62, display)
    thumb = cv2.imread(str(tmp_path / rel), cv2.IMREAD_UNCHANGED)
    assert thumb.dtype == np.uint8
    assert thumb.shape == (THUMB_SIDE * 3 // 4, THUMB_SIDE)


def test_missing_stored_image_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="images/zz/missing.png"):
        read_pixels(tmp_path, "images/zz/missing.png", 0.0, 1.0)
