"""Import throughput: the 295 real JPEGs of ../shared/data/cxr-lungs (images/s) and the real
CR DICOM, uncompressed and JPEG 2000 (ms each).

    python bench/bench_import.py [--limit N] [--with-labelme]

Runs the product's own import (`core.ingest.importer.import_paths`: decode, de-identify, store a
lossless PNG and a thumbnail, one database row per image) into a throwaway workspace. LabelMe
files beside the JPEGs are left out unless --with-labelme, so the figure is about images.
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable as `python bench/...` from a plain checkout

from core.ingest.importer import import_paths  # noqa: E402
from core.workspace import Workspace  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def jpeg_paths(tmp: Path, limit: int | None, with_labelme: bool) -> list[Path]:
    images = sorted((DATA / "cxr-lungs" / "images").glob("*.jpg"))[:limit]
    if with_labelme:
        return images
    # Copies without the JSON beside them: only image import is timed.
    folder = tmp / "jpegs"
    folder.mkdir()
    for p in images:
        shutil.copyfile(p, folder / p.name)
    return sorted(folder.glob("*.jpg"))


def bench_jpegs(tmp: Path, limit: int | None, with_labelme: bool) -> dict:
    paths = jpeg_paths(tmp, limit, with_labelme)
    ws = Workspace.open(tmp / "ws-jpeg")
    t0 = time.perf_counter()
    report = import_paths(ws, paths)
    seconds = time.perf_counter() - t0
    ws.dispose()
    return {
        "figure": "import_jpeg",
        "files": len(paths),
        "imported": len(report.imported),
        "duplicates": len(report.duplicates),
        "refused": len(report.refused),
        "seconds": round(seconds, 2),
        "images_per_s": round(len(paths) / seconds, 1),
    }


def bench_dicom(tmp: Path, name: str, repeat: int = 3) -> dict:
    path = DATA / "dicom" / name
    samples = []
    for i in range(repeat):
        ws = Workspace.open(tmp / f"ws-{name}-{i}")  # fresh each time: no duplicate shortcut
        t0 = time.perf_counter()
        report = import_paths(ws, [path])
        samples.append((time.perf_counter() - t0) * 1000)
        ws.dispose()
        assert len(report.imported) == 1, report.summary()
    return {
        "figure": "import_dicom",
        "file": name,
        "ms_min": round(min(samples), 1),
        "ms_median": round(sorted(samples)[len(samples) // 2], 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, help="only the first N JPEGs")
    p.add_argument("--with-labelme", action="store_true", help="also import the LabelMe files")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pneumolab-bench-") as tmp:
        print(json.dumps(bench_jpegs(Path(tmp), args.limit, args.with_labelme)), flush=True)
        for name in ("RG1_UNCI.dcm", "RG1_J2KR.dcm"):
            print(json.dumps(bench_dicom(Path(tmp), name)), flush=True)


if __name__ == "__main__":
    main()
