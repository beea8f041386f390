"""Minimal distributed run on synthetic data, for the test suite and for checking a cluster:

    torchrun --standalone --nproc_per_node=2 -m core.ml.training.ddp_smoke --out DIR [--device cpu]

Rank 0 prints one JSON line with the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from core.ml.dataset import patient_split
from core.ml.training.config import TrainConfig
from core.ml.training.loop import train_model
from core.ml.training.synthetic import synthetic_items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args(argv)
    config = TrainConfig(
        arch="unet", encoder="resnet18", size=64, epochs=args.epochs, batch_size=4, lr=2e-3,
        warmup_epochs=0, device=args.device, num_workers=0,
    )  # fmt: skip
    train, val = patient_split(synthetic_items(args.images, negative_every=4), 0.25, seed=0)
    result = train_model(config, train, val, args.out)
    if result.world_size == 1 or os.environ.get("RANK") == "0":
        print(
            json.dumps(
                {
                    "world_size": result.world_size,
                    "best_checkpoint": str(result.best_checkpoint),
                    "best_epoch": result.best_epoch,
                    "val_dice": result.val_metrics["dice"],
                    "device": result.device,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
