"""Grad-CAM latency per image (segmentation target on the predicted region), on real chest
X-rays from ../shared/data/cxr-lungs, CPU by default, model input 512 px.

    python bench/bench_gradcam.py --size 512 --images 10
    python bench/bench_gradcam.py --arch deeplabv3 --encoder resnet34 --layer encoder
    python bench/bench_gradcam.py --workspace ws --images 5   # the Review page's own path

The model is untrained (encoder_weights=None, no network): Grad-CAM's cost is one forward and
one backward pass whatever the weights. Prints one JSON line per (arch, layer) with the median
and p90 seconds per image, the heatmap at the image's original size included; then one
{"bench": "gradcam_cached"} line: what the Review page pays for a heatmap already cached per
(version, image) by core.review.explain (read the stored 8-bit PNG, blend it over the image),
the median over the same images. With --workspace (a workspace with a trained active version
and its predictions), {"bench": "gradcam_product"} instead times core.review.explain's
gradcam_heatmap as the page calls it: images the prediction job did not precompute (model
loading included in the first), then the same images again (served from the cache). --threads 1 matches a busy shared machine better.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.ml.gradcam import SegmentationGradCam  # noqa: E402
from core.ml.models import create_model  # noqa: E402
from core.review.overlay import heatmap_overlay  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs" / "images"


def product_path(root: str, n: int) -> None:
    from core.review import explain
    from core.review.rows_cache import cached_review_rows
    from core.versions import active_version
    from core.workspace import Workspace

    ws = Workspace.open(root)
    try:
        version = active_version(ws)
        ids = [r.image_id for r in cached_review_rows(ws, version.id)]
        todo = [i for i in ids if explain.cached_heatmap(ws, i, version.id) is None][:n]
        first, cached = [], []
        for image_id in todo:
            t0 = time.perf_counter()
            explain.gradcam_heatmap(ws, image_id, version.id)
            first.append(time.perf_counter() - t0)
        for image_id in todo:
            t0 = time.perf_counter()
            explain.gradcam_heatmap(ws, image_id, version.id)
            cached.append(time.perf_counter() - t0)
        print(
            json.dumps(
                {
                    "bench": "gradcam_product",
                    "version": version.id,
                    "size": version.image_size,
                    "arch": f"{version.arch}/{version.encoder}",
                    "threads": torch.get_num_threads(),
                    "images": len(todo),
                    "first_click_with_model_load_s": round(first[0], 3),
                    "uncached_median_s": round(statistics.median(first[1:] or first), 3),
                    "cached_median_s": round(statistics.median(cached), 4),
                    "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                }
            ),
            flush=True,
        )
    finally:
        ws.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--arch", default="unet")
    p.add_argument("--encoder", default="resnet34")
    p.add_argument("--layer", default="decoder", help="decoder | encoder | decoder,encoder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--workspace", help="time the Review page's path on this workspace instead")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.workspace:
        product_path(args.workspace, args.images)
        return
    device = torch.device(args.device)
    images = [
        cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        for path in sorted(DATA.glob("*.jpg"))[: args.images]
    ]
    model = create_model(args.arch, args.encoder, 1, 1, None).to(device).eval()
    for layer in args.layer.split(","):
        with SegmentationGradCam(model, size=args.size, layer=layer) as cam:
            cam.heatmap(images[0])  # warm-up: first call allocates
            times = []
            heats = []
            for image in images:
                t0 = time.perf_counter()
                heat = cam.heatmap(image)
                times.append(time.perf_counter() - t0)
                assert heat.shape == image.shape
                heats.append(heat)
        times.sort()
        print(
            json.dumps(
                {
                    "bench": "gradcam",
                    "arch": f"{args.arch}/{args.encoder}",
                    "layer": layer,
                    "size": args.size,
                    "device": str(device),
                    "threads": torch.get_num_threads(),
                    "images": len(times),
                    "median_s": round(statistics.median(times), 3),
                    "p90_s": round(times[int(0.9 * (len(times) - 1))], 3),
                    "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                }
            ),
            flush=True,
        )
    cached_times = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, (image, heat) in enumerate(zip(images, heats, strict=True)):
            path = Path(tmp) / f"{n}.png"
            cv2.imwrite(str(path), np.round(heat * 255).astype(np.uint8))  # as explain stores
            gray = np.round(image * 255).astype(np.uint8)
            t0 = time.perf_counter()
            stored = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
            heatmap_overlay(gray, stored, 0.45)
            cached_times.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "bench": "gradcam_cached",
                "images": len(cached_times),
                "median_s": round(statistics.median(cached_times), 4),
                "max_s": round(max(cached_times), 4),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
