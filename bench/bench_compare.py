"""Architecture comparison benchmark on ../shared/data/cxr-lungs (295 chest X-rays, lungs).

The folder is imported through the product's own import into a temporary workspace (its
images with their LabelMe lungs, and labels.csv beside them for the patients), then
core.tasks.compare trains each architecture on the same patient-wise split with the same
budget, exactly as `pneumolab compare` does.

    python bench/bench_compare.py                                  # unet,deeplabv3,segnet, 3 epochs
    python bench/bench_compare.py --archs unet,segnet --epochs 10 --size 256 --device cuda

Prints JSON lines: {"bench": "compare_import"}, one {"bench": "compare_epoch"} per epoch of
each architecture and one {"bench": "compare"} with the side-by-side report. Figures only:
nothing passes or fails on time.
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
from core.tasks.compare import compare  # noqa: E402
from core.tasks.submit import TrainRequest  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs"


def emit(row: dict) -> None:
    print(json.dumps(row, default=str), flush=True)


class EpochPrinter(NullProgress):
    """One JSON line per epoch; compare() names the architecture in its log lines."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.arch: str | None = None
        self.offset: int | None = None

    def on_log(self, message: str) -> None:
        if message.startswith("comparison: training "):
            self.arch, self.offset = message.split()[2], None

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        # compare() counts epochs on across architectures (one progress bar); print each
        # architecture's own epoch.
        if self.offset is None:
            self.offset = epoch - 1
        row = {"bench": "compare_epoch", "arch": self.arch, "epoch": epoch - self.offset}
        row["elapsed_s"] = round(time.perf_counter() - self.t0)
        row.update({k: round(float(v), 4) for k, v in metrics.items() if k != "epoch"})
        emit(row)


def import_data(ws: Workspace, max_images: int) -> None:
    t0 = time.perf_counter()
    sources = collect_sources([DATA])  # images/ and labels.csv (patients) beside them
    if max_images:
        sources = sources[:max_images]
    report = import_sources(ws, sources)
    emit(
        {
            "bench": "compare_import",
            "imported": len(report.imported) + len(report.duplicates),
            "refused": len(report.refused),
            "labelled_lung": len(labelled_images(ws, "lung")),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="unet,deeplabv3,segnet")
    p.add_argument("--encoder", default="resnet18", help="ResNet of the smp architectures")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3, help="epochs for each architecture")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, default=0, help="import only the first N files")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        try:
            import_data(ws, args.max_images)
            req = TrainRequest(
                label="lung",
                encoder=args.encoder,
                size=args.size,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                device=args.device,
                seed=args.seed,
                activate="never",
                created_by="bench",
            )
            t0 = time.perf_counter()
            archs = [a.strip() for a in args.archs.split(",") if a.strip()]
            report = compare(ws, archs, req, EpochPrinter())
            emit(
                {
                    "bench": "compare",
                    **report,
                    "torch_threads": torch.get_num_threads(),
                    "wall_s": round(time.perf_counter() - t0, 1),
                }
            )
        finally:
            ws.dispose()


if __name__ == "__main__":
    main()
