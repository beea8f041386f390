"""Grad-CAM latency per image (segmentation target on the predicted region), on real chest
X-rays from ../shared/data/cxr-lungs, CPU by default, model input 512 px.

    python bench/bench_gradcam.py --size 512 --images 10
    python bench/bench_gradcam.py --arch deeplabv3 --encoder resnet34 --layer encoder

The model is untrained (encoder_weights=None, no network): Grad-CAM's cost is one forward and
one backward pass whatever the weights. Prints one JSON line per (arch, layer) with the median
and p90 seconds per image, the heatmap at the image's original size included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.ml.gradcam import SegmentationGradCam  # noqa: E402
from core.ml.models import create_model  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs" / "images"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--arch", default="unet")
    p.add_argument("--encoder", default="resnet34")
    p.add_argument("--layer", default="decoder", help="decoder | encoder | decoder,encoder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
            for image in images:
                t0 = time.perf_counter()
                heat = cam.heatmap(image)
                times.append(time.perf_counter() - t0)
                assert heat.shape == image.shape
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
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
