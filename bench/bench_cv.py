"""Patient-wise k-fold cross-validation of training recipes on ../shared/data/cxr-lungs,
scored at each image's original resolution, as the held-out set is scored.

    nice -n 19 python bench/bench_cv.py --recipes plain128,quick
    nice -n 19 python bench/bench_cv.py --recipes best --only-folds 0 --epochs 10

Data path: the folder is imported once through the product's own import into a temporary
workspace (LabelMe polygons become revisions, labels.csv's patient ids are stored hashed), and
the training items are the product's (core.labels.reference.labelled_images: reference masks
from the one rasteriser, pixels under the default window). Folds: core.ml.dataset.patient_folds
over the stored hashed patient ids. Each fold trains with core.ml.training.loop.train_model on
the other folds (checkpoint chosen on a patient-wise inner validation split of those, with the
recipe's val_fraction) and predicts the held-out fold with core.ml.inference at the original
size, with the recipe's test-time augmentation and post-processing.

Recipes: the product's (core.ml.training.recipes: quick, best) and "plain128", the baseline
of the issue: `train --arch unet --encoder resnet18 --size 128 --epochs 15` with the product's
defaults (Adam 5e-4, batches of 8, BCE+IoU, basic augmentation, a 20% inner validation split
with early stopping, no TTA, no post-processing). Folds can run in separate processes
(--only-folds) and be pooled afterwards: each fold's row is complete on its own.

Prints JSON lines: {"bench": "cv_import"}, one {"bench": "cv_fold"} per recipe and fold (per
image Dice and pooled Dice, with and without TTA / post-processing: the model is the same,
so these four columns are the levers' effect on that model), and {"bench": "cv"} per recipe:
mean +- sd over the folds. --epochs overrides the recipe's schedule length (the row says so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from core.ingest.importer import import_sources  # noqa: E402
from core.ingest.sources import collect_sources  # noqa: E402
from core.labels.catalog import training_pixels  # noqa: E402
from core.labels.reference import labelled_images  # noqa: E402
from core.ml.checkpoint import load_model  # noqa: E402
from core.ml.dataset import TrainItem, patient_folds, patient_split  # noqa: E402
from core.ml.inference import predict_probabilities  # noqa: E402
from core.ml.metrics import pixel_counts, summarise_counts  # noqa: E402
from core.ml.postprocess import PostProcess  # noqa: E402
from core.ml.progress import NullProgress  # noqa: E402
from core.ml.training.config import TrainConfig  # noqa: E402
from core.ml.training.loop import train_model  # noqa: E402
from core.ml.training.recipes import get_recipe  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs"
LABEL = "lung"


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def recipe_config(name: str, device: str, epochs: int | None) -> TrainConfig:
    if name == "plain128":
        config = TrainConfig(arch="unet", encoder="resnet18", size=128, epochs=15, device=device)
    else:
        config = TrainConfig(**{**get_recipe(name).config_fields(LABEL), "device": device})
    if epochs is not None:
        config = replace(config, epochs=epochs, warmup_epochs=min(config.warmup_epochs, epochs))
    return config


class EpochLog(NullProgress):
    def __init__(self, tag: dict) -> None:
        self.tag = tag

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        row = {"bench": "cv_epoch", **self.tag, "load": load()}
        row.update({k: round(float(v), 4) for k, v in metrics.items()})
        print(json.dumps(row), file=sys.stderr, flush=True)


def score_fold(model, meta, items: list[TrainItem], config: TrainConfig, device: str) -> dict:
    """Per-image and pooled Dice at original size: plain, +TTA, +post-processing, both."""
    option = PostProcess.from_dict(config.postprocess) or PostProcess(2, True)
    variants = {
        "plain": (False, None),
        "tta": (True, None),
        "pp": (False, option),
        "tta_pp": (True, option),
    }
    counts: dict[str, list] = {k: [] for k in variants}
    for start in range(0, len(items), 8):
        chunk = items[start : start + 8]
        images = [it.load_image() for it in chunk]
        truths = [np.asarray(it.mask(), bool) for it in chunk]
        for key, (tta, pp) in variants.items():
            probs = predict_probabilities(
                model, images, meta.size, device, 8, meta.normalisation, tta=tta, postprocess=pp
            )
            for prob, truth in zip(probs, truths, strict=True):
                counts[key].append(pixel_counts(prob > 0.5, truth))
    out = {}
    for key, c in counts.items():
        s = summarise_counts(c)
        out[f"dice_{key}"] = round(s["dice"], 4)
        out[f"pooled_dice_{key}"] = round(s["pooled_dice"], 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default="plain128,quick,best")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--only-folds", help="comma-separated fold numbers to run (default: all)")
    p.add_argument("--epochs", type=int, help="override the recipes' epochs (labelled)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-images", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default); 1 is far faster on a busy shared machine",
    )
    p.add_argument("--workspace", help="workspace folder (default: a temporary one)")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    root = Path(args.workspace or tempfile.mkdtemp(prefix="pneumolab-bench-cv-"))
    ws = Workspace.open(root / "ws")
    t0 = time.perf_counter()
    sources = collect_sources([DATA])
    if args.max_images:
        sources = sources[: args.max_images]
    import_sources(ws, sources)
    labelled = labelled_images(ws, LABEL)
    items = [
        TrainItem(
            image_id=li.image_id,
            patient_key=li.patient_key,
            load_image=lambda i=li.image_id: training_pixels(ws, i),
            mask=lambda li=li: li.mask(LABEL),
            cache_key=li.content_hash,
        )
        for li in labelled
    ]
    folds = patient_folds(items, args.folds, args.seed)
    emit(
        {
            "bench": "cv_import",
            "images": len(items),
            "patients": len({it.patient_key for it in items}),
            "fold_images": [len(f) for f in folds],
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    wanted = [int(f) for f in args.only_folds.split(",")] if args.only_folds else range(args.folds)
    for name in args.recipes.split(","):
        config = recipe_config(name, args.device, args.epochs)
        rows = []
        for k in wanted:
            test = folds[k]
            rest = [it for f, fold in enumerate(folds) if f != k for it in fold]
            train_set, val_set = patient_split(rest, config.val_fraction, config.seed)
            tag = {"recipe": name, "fold": k}
            started = time.perf_counter()
            result = train_model(
                config,
                train_set,
                val_set,
                root / "runs" / f"{name}-{k}",
                EpochLog(tag),
                cache_dir=root / "cache",
            )
            train_s = time.perf_counter() - started
            device = "cuda" if result.device.startswith("cuda") else "cpu"
            model, _spec, meta = load_model(result.best_checkpoint, device)
            scores = score_fold(model, meta, test, config, device)
            row = {
                "bench": "cv_fold",
                **tag,
                "size": config.size,
                "arch": f"{config.arch}/{config.encoder}",
                "epochs": config.epochs,
                "epochs_overridden": args.epochs is not None,
                "n_train": len(train_set),
                "n_inner_val": len(val_set),
                "n_test": len(test),
                "best_epoch": result.best_epoch,
                "train_s": round(train_s, 1),
                "images_per_s": round(result.images_per_s, 2),
                "device": result.device,
                "precision": result.precision,
                "load_during": load(),
                "threads": torch_threads(),
                **scores,
            }
            rows.append(row)
            emit(row)
        summary = {"bench": "cv", "recipe": name, "folds": [r["fold"] for r in rows]}
        summary.update({"epochs": config.epochs, "epochs_overridden": args.epochs is not None})
        for key in [k for k in rows[0] if k.startswith(("dice_", "pooled_dice_"))]:
            values = [r[key] for r in rows]
            summary[key] = round(statistics.mean(values), 4)
            summary[f"{key}_sd"] = round(statistics.stdev(values), 4) if len(values) > 1 else None
        summary["train_s_mean"] = round(statistics.mean(r["train_s"] for r in rows), 1)
        emit(summary)
    ws.dispose()


if __name__ == "__main__":
    main()
