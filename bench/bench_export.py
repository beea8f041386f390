"""Export speed on the real set: LabelMe + PNG masks + COCO, and scaled to 1,000 images.

    python bench/bench_export.py                     # real set, then scaled to 1,000 images
    python bench/bench_export.py --scale 0 --threads 1

The real folder ../shared/data/cxr-lungs/images is imported once into a throwaway workspace
through the product's own LabelMe import (294 unique images, 588 stored lung polygons). The
"scaled" figure exports that workspace again and again into fresh folders, cycling through
its images until --scale images have been exported (3 full passes + part of a fourth for
1,000), and sums the time: the same work per image as a 1,000-image workspace, without
importing 700 synthetic images first. Prints JSON lines:
  {"bench": "export_import"}  the import itself (s)
  {"bench": "export_real"}    `export_workspace(..., "all")` of the real set (s, ms/image)
  {"bench": "export_zip"}     the same into one .zip (s)
  {"bench": "export_scaled"}  --scale images (s, ms/image)
Each export line gives wall seconds ("s") and this process's CPU seconds ("cpu_s": all
threads together), and every line the machine's 1-minute load average when it was printed
("load"): on a shared machine other work stretches "s", much less "cpu_s".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.ingest.importer import import_paths  # noqa: E402
from core.interchange.export import export_items, export_workspace  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "cxr-lungs" / "images"


class _Clock:
    """Wall and process CPU seconds since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1000, help="images for the scaled figure (0: skip)")
    p.add_argument("--threads", type=int, default=None, help="export threads (default: up to 4)")
    p.add_argument("--data", type=Path, default=DATA)
    args = p.parse_args()
    threads = args.threads or min(4, os.cpu_count() or 1)

    def common() -> dict:
        return {"cpus": os.cpu_count(), "threads": threads, "load": _load()}

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        ws = Workspace.open(root / "ws")
        try:
            t = time.perf_counter()
            report = import_paths(ws, [args.data]).summary()
            dt = time.perf_counter() - t
            print(
                json.dumps(
                    {"bench": "export_import", **common(), "s": round(dt, 1), **report}, default=str
                ),
                flush=True,
            )
            image_ids = sorted({it.image_id for it in export_items(ws)})

            clock = _Clock()
            summary = export_workspace(ws, "all", root / "real", threads=args.threads)
            dt, cpu = clock.lap()
            n = summary["images"]
            print(
                json.dumps(
                    {
                        "bench": "export_real",
                        **common(),
                        "images": n,
                        "shapes": summary["shapes"],
                        "s": round(dt, 2),
                        "cpu_s": round(cpu, 2),
                        "ms_per_image": round(1000 * dt / n, 1),
                        "files": summary.get("files"),
                        "mb": _size_mb(root / "real"),
                    }
                ),
                flush=True,
            )

            clock = _Clock()
            export_workspace(ws, "all", root / "real.zip", zip_output=True, threads=args.threads)
            dt, cpu = clock.lap()
            mb = round((root / "real.zip").stat().st_size / 1e6, 1)
            line = {"bench": "export_zip", **common(), "s": round(dt, 2), "cpu_s": round(cpu, 2)}
            print(json.dumps({**line, "mb": mb}), flush=True)

            if args.scale:
                done, passes, total, total_cpu = 0, 0, 0.0, 0.0
                while done < args.scale:
                    ids = image_ids[: args.scale - done]
                    out = root / f"pass{passes}"
                    clock = _Clock()
                    s = export_workspace(ws, "all", out, image_ids=ids, threads=args.threads)
                    dt, cpu = clock.lap()
                    total, total_cpu = total + dt, total_cpu + cpu
                    done += s["images"]
                    passes += 1
                    # Keep the disk small: only the time matters here.
                    for f in sorted(out.rglob("*"), reverse=True):
                        f.unlink() if f.is_file() else f.rmdir()
                print(
                    json.dumps(
                        {
                            "bench": "export_scaled",
                            **common(),
                            "images": done,
                            "passes": passes,
                            "s": round(total, 1),
                            "cpu_s": round(total_cpu, 1),
                            "ms_per_image": round(1000 * total / done, 1),
                        }
                    ),
                    flush=True,
                )
        finally:
            ws.dispose()


if __name__ == "__main__":
    main()
