"""Real training benchmark on ../shared/data/cxr-lungs (295 chest X-rays, human lung polygons).

The folder is imported through the product's own import (the LabelMe JSON beside each image
becomes a revision, labels.csv gives the patients), then each architecture is trained from
scratch through the same service as `pneumolab train`, with the patient-wise validation split.

    python bench/bench_train.py --arch unet,deeplabv3 --encoder resnet34 --size 256 --epochs 30
    python bench/bench_train.py --arch unet --size 128 --epochs 4 --device cpu --max-images 120
    python bench/bench_train.py --throughput --arch unet --size 256 --device cuda
    python bench/bench_train.py --recipe best --device cuda     # a recipe, end to end

Prints JSON lines: {"bench": "train_import"}, one {"bench": "train_epoch"} per epoch and one
{"bench": "train"} summary per architecture. --throughput instead times training steps fed by
the real data pipeline (cache + augmentation + DataLoader) against the same model fed
tensors already in device memory ({"bench": "train_throughput"}), once per variant: on CUDA
AMP off / AMP on / AMP + channels-last (--variants), on CPU plain and channels-last, so each
lever's gain is one row.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from core.ingest.importer import import_sources  # noqa: E402
from core.ingest.sources import collect_sources  # noqa: E402
from core.labels.reference import labelled_images  # noqa: E402
from core.ml.progress import NullProgress  # noqa: E402
from core.tasks.submit import TrainRequest  # noqa: E402
from core.tasks.train import train, train_cache_dir, train_items  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs"


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


class EpochPrinter(NullProgress):
    def __init__(self, tag: dict) -> None:
        self.tag, self.t0 = tag, time.perf_counter()

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        row = {
            "bench": "train_epoch",
            **self.tag,
            "elapsed_s": round(time.perf_counter() - self.t0),
        }
        row.update({k: round(float(v), 4) for k, v in metrics.items()})
        emit(row)


def import_data(ws: Workspace, max_images: int) -> None:
    """Import the folder (so labels.csv's patients come along), optionally its first N images."""
    t0 = time.perf_counter()
    sources = collect_sources([DATA])
    if max_images:
        sources = sources[:max_images]
    report = import_sources(ws, sources)
    emit(
        {
            "bench": "train_import",
            "imported": len(report.imported) + len(report.duplicates),
            "refused": len(report.refused),
            "labelled_lung": len(labelled_images(ws, "lung")),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )


def run_training(ws: Workspace, args: argparse.Namespace, arch: str) -> None:
    tag = {"arch": arch, "encoder": args.encoder, "size": args.size, "recipe": args.recipe}
    req = TrainRequest(
        label="lung",
        arch=None if args.recipe else arch,
        encoder=None if args.recipe else args.encoder,
        size=None if args.recipe else args.size,
        recipe=args.recipe,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        loss=args.loss,
        device=args.device,
        early_stopping_patience=None,
        activate="always",
        seed=args.seed,
    )
    t0 = time.perf_counter()
    version = train(ws, req, EpochPrinter(tag))
    wall = time.perf_counter() - t0
    m, snap = version.metrics, version.data_snapshot
    emit(
        {
            "bench": "train",
            **tag,
            "epochs": args.epochs,
            "device": version.device,
            "torch_threads": torch.get_num_threads(),
            "n_train": snap["n_train"],
            "n_val": snap["n_val"],
            "n_patients": snap["n_patients"],
            "val_dice": round(m.get("dice", 0.0), 4),
            "val_iou": round(m.get("iou", 0.0), 4),
            "val_pooled_dice": round(m.get("pooled_dice", 0.0), 4),
            "val_pixel_accuracy": round(m.get("pixel_accuracy", 0.0), 4),
            "best_epoch": m.get("best_epoch"),
            "train_images_per_s": round(m.get("images_per_s", 0.0), 2),
            "wall_s": round(wall, 1),
            "config": {
                k: version.settings["train_config"][k]
                for k in ("arch", "encoder", "size", "epochs", "amp", "channels_last", "tta")
            },
        }
    )


def _steps_per_s(
    model, batches, loss_fn, optimizer, device, amp_dtype, steps: int, channels_last: bool
) -> float:
    """Training steps per second over `steps` batches drawn from the iterable `batches`."""
    from core.ml.dataset import Normalisation

    norm = Normalisation()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    done, t0 = 0, None
    while done < steps:
        for image, mask in batches():
            if done == 2:  # the first steps warm up kernels and allocators
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            image = image.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            mask = mask.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(norm.apply(image))
            loss = loss_fn(logits, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done >= steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (done - 2) / (time.perf_counter() - t0)


def run_throughput(
    ws: Workspace, args: argparse.Namespace, arch: str, amp: bool, channels_last: bool
) -> None:
    """End-to-end (cache + augmentation + DataLoader workers) vs in-memory tensors."""
    from torch.utils.data import DataLoader

    from core.ml.augment import preset
    from core.ml.dataset import ResizedCache, SegmentationDataset
    from core.ml.device import autocast_dtype, resolve_device
    from core.ml.losses import create_loss
    from core.ml.models import create_model
    from core.ml.training.loop import _worker_init

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    items = train_items(ws, labelled_images(ws, "lung"), "lung")
    cache = ResizedCache(args.size, train_cache_dir(ws))
    t0 = time.perf_counter()
    cache.warm(items)
    warm_s = time.perf_counter() - t0
    dataset = SegmentationDataset(
        items, args.size, True, cache, seed=0, augment_config=preset(args.augment_preset)
    )
    workers = args.workers if args.workers is not None else (4 if cuda else 0)
    loader = DataLoader(
        dataset, args.batch_size, shuffle=True, drop_last=True, num_workers=workers,
        pin_memory=cuda, persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers else None,
    )  # fmt: skip
    torch.manual_seed(args.seed)
    model = create_model(arch, args.encoder).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    amp_dtype = autocast_dtype(device, amp)
    loss_fn = create_loss(args.loss).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    image, mask = next(iter(loader))
    image, mask = image.to(device), mask.to(device)

    def in_memory():
        return [(image, mask)] * args.steps

    timing = (loss_fn, optimizer, device, amp_dtype, args.steps, channels_last)
    e2e = _steps_per_s(model, lambda: loader, *timing)
    mem = _steps_per_s(model, in_memory, *timing)
    emit(
        {
            "bench": "train_throughput",
            "arch": arch,
            "encoder": args.encoder,
            "size": args.size,
            "device": str(device) if not cuda else torch.cuda.get_device_name(device),
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "channels_last": channels_last,
            "augment_preset": args.augment_preset,
            "batch_size": args.batch_size,
            "dataloader_workers": workers,
            "images": len(items),
            "cache_warm_s": round(warm_s, 1),
            "decoded": cache.decoded,
            "end_to_end_images_per_s": round(e2e * args.batch_size, 1),
            "in_memory_images_per_s": round(mem * args.batch_size, 1),
            "ratio": round(e2e / mem, 3),
        }
    )


VARIANTS = {
    "plain": (False, False),
    "cl": (False, True),
    "amp": (True, False),
    "amp+cl": (True, True),
}


def _variants(args: argparse.Namespace) -> list[tuple[bool, bool]]:
    """(amp, channels_last) rows to time: AMP acts on CUDA only, channels-last on both."""
    if args.no_amp or not torch.cuda.is_available() or args.device == "cpu":
        return [VARIANTS["plain"], VARIANTS["cl"]]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant {unknown[0]!r}; valid: {', '.join(VARIANTS)}")
    return [VARIANTS[v] for v in names]


def main() -> None:
    p = argparse.ArgumentParser(description="Train on cxr-lungs and report Dice/IoU and speed.")
    p.add_argument("--arch", default="unet,deeplabv3", help="comma-separated architectures")
    p.add_argument("--encoder", default="resnet34")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--loss", default="bce_iou")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, default=0, help="first N images only (0 = all)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--workspace", help="reuse this workspace folder (default: a temporary one)")
    p.add_argument("--throughput", action="store_true", help="time the pipeline, don't train")
    p.add_argument("--steps", type=int, default=40, help="training steps per throughput timing")
    p.add_argument("--workers", type=int, help="DataLoader workers for --throughput")
    p.add_argument("--no-amp", action="store_true", help="--throughput: only the AMP-off row")
    p.add_argument(
        "--variants",
        default="plain,amp,amp+cl",
        help="--throughput on CUDA: comma-separated rows of plain | cl | amp | amp+cl "
        "(cl: channels-last)",
    )
    p.add_argument(
        "--augment-preset", default="radiograph", help="--throughput: basic | radiograph"
    )
    p.add_argument("--recipe", help="train with this recipe (quick | best) instead of the flags")
    args = p.parse_args()
    if not DATA.is_dir():
        sys.exit(f"missing {DATA}: clone the project beside ../shared")
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="pneumolab-bench-") as tmp:
        ws = Workspace.open(args.workspace or tmp)
        try:
            import_data(ws, args.max_images)
            for arch in args.arch.split(","):
                if args.throughput:
                    for amp, cl in _variants(args):
                        run_throughput(ws, args, arch, amp, cl)
                else:
                    run_training(ws, args, arch)
        finally:
            ws.dispose()


if __name__ == "__main__":
    main()
