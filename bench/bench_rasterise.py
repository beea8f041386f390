"""Rasteriser speed: N random polygons of ~V vertices on a SIDE x SIDE image.

    python bench/bench_rasterise.py                      # 10,000 polygons, ~100 vertices, 1024²
    python bench/bench_rasterise.py --shapes 2000 --labelme 500

Polygons are ragged closed outlines (like lung contours) of random size and position.
Prints JSON lines:
  {"bench": "rasterise_shape_mask"}  validate + one full-size mask per shape (ms/shape)
  {"bench": "rasterise_union"}       `rasterise` of 10 shapes per image into per-label masks
  {"bench": "rasterise_labelme"}     labelme's own shape_to_mask on a subset, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from annotations.rasterise import rasterise, shape_mask  # noqa: E402
from annotations.shapes import Shape  # noqa: E402


def make_polygons(n: int, vertices: int, side: int, seed: int = 0) -> list[Shape]:
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(n):
        k = max(3, int(rng.integers(vertices * 8 // 10, vertices * 12 // 10 + 1)))
        cx, cy = rng.uniform(0.1, 0.9, 2) * side
        radius = rng.uniform(0.03, 0.3) * side
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = radius * rng.uniform(0.6, 1.0, k)
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
        shapes.append(Shape("lung", "polygon", tuple(map(tuple, np.round(pts, 2).tolist()))))
    return shapes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", type=int, default=10_000)
    p.add_argument("--vertices", type=int, default=100)
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--labelme", type=int, default=1000, help="shapes timed with labelme (0: skip)")
    args = p.parse_args()
    size = (args.side, args.side)
    shapes = make_polygons(args.shapes, args.vertices, args.side)
    common = {
        "shapes": args.shapes,
        "vertices_mean": round(float(np.mean([len(s.points) for s in shapes])), 1),
        "image": f"{args.side}x{args.side}",
        "cpus": os.cpu_count(),
    }

    t = time.perf_counter()
    pixels = sum(int(shape_mask(s, size).sum()) for s in shapes)
    dt = time.perf_counter() - t
    print(
        json.dumps(
            {
                "bench": "rasterise_shape_mask",
                **common,
                "total_s": round(dt, 2),
                "ms_per_shape": round(1000 * dt / len(shapes), 3),
                "mean_pixels": pixels // len(shapes),
            }
        ),
        flush=True,
    )

    t = time.perf_counter()
    for i in range(0, len(shapes), 10):
        rasterise(shapes[i : i + 10], size)
    dt = time.perf_counter() - t
    print(
        json.dumps(
            {
                "bench": "rasterise_union",
                **common,
                "shapes_per_image": 10,
                "total_s": round(dt, 2),
                "ms_per_shape": round(1000 * dt / len(shapes), 3),
            }
        ),
        flush=True,
    )

    if args.labelme:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from labelme.utils import shape_to_mask

        subset = shapes[: args.labelme]
        t = time.perf_counter()
        for s in subset:
            shape_to_mask((args.side, args.side), [list(p) for p in s.points], "polygon")
        dt = time.perf_counter() - t
        print(
            json.dumps(
                {
                    "bench": "rasterise_labelme",
                    **common,
                    "shapes": len(subset),
                    "ms_per_shape": round(1000 * dt / len(subset), 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
