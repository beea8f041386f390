"""Nested .zip archives are spooled to temporary files while an import collects its
sources, so an archive of many large archives never sits in memory all at once."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np

from core.ingest.sources import collect

INNER_MB = 4
INNERS = 6


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def test_many_large_inner_archives_are_not_held_in_memory(tmp_path):
    rng = np.random.default_rng(3)
    inner = [
        _zip([(f"x{k}.png", rng.integers(0, 256, INNER_MB * 2**20, dtype=np.uint8).tobytes())])
        for k in range(INNERS)
    ]
    outer = tmp_path / "batch.zip"
    outer.write_bytes(_zip([(f"part{k}.zip", data) for k, data in enumerate(inner)]))
    del inner

    tracemalloc.start()
    try:
        collected = collect([outer])
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    names = sorted(s.name for s in collected.sources)
    assert names == [f"{outer}!part{k}.zip!x{k}.png" for k in range(INNERS)]
    one = INNER_MB * 2**20
    # Reading one inner archive at a time: the whole batch would be INNERS x that.
    assert held < one, f"{held / 2**20:.1f} MB still held after collecting"
    assert peak < 3 * one, f"peak {peak / 2**20:.1f} MB while collecting"
    # The spooled archives still read back whole.
    assert all(len(s.read()) == one for s in collected.sources)
