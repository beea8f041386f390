"""Worklist speed with many images: first page, a filtered page and a deep page, in ms.

    python bench/bench_worklist.py [--rows 100000] [--page-size 24] [--repeat 20]

Fills a throwaway SQLite workspace with image rows by bulk SQL (no pixels: the worklist
reads rows and thumbnails paths only), then times the same service call the worklist page
makes (`core.labels.catalog.worklist`: one count and one page query). Prints one JSON line per
figure, plus the SQLite query plans so a full scan is visible.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable as `python bench/...` from a plain checkout

from core.labels.catalog import worklist  # noqa: E402
from core.workspace import Workspace  # noqa: E402
from db import queries  # noqa: E402
from db.models import Image  # noqa: E402
from db.queries import WorklistFilter  # noqa: E402

STATUSES = ("unlabelled", "unlabelled", "unlabelled", "labelled", "negative")
MODALITIES = ("CR", "DX", "OT", "OT")


def fill(ws: Workspace, rows: int, batch: int = 10_000) -> float:
    """Insert `rows` image rows in batches; returns seconds taken."""
    start_time = datetime(2024, 1, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    with ws.engine.begin() as conn:
        for first in range(0, rows, batch):
            conn.execute(
                insert(Image),
                [
                    {
                        "content_hash": f"{i:064x}",
                        "storage_path": f"images/{i % 256:02x}/{i:064x}.png",
                        "thumbnail_path": f"thumbs/{i % 256:02x}/{i:064x}.png",
                        "width": 1024,
                        "height": 1024 - i % 200,
                        "modality": MODALITIES[i % len(MODALITIES)],
                        "source_format": "jpeg",
                        "bits_stored": 8,
                        "photometric": "MONOCHROME2",
                        "pixel_offset": 0.0,
                        "pixel_scale": 1.0,
                        "value_min": 0.0,
                        "value_max": 255.0,
                        "display_name": f"IMG-{i + 1:06d}",
                        # A rare status shows whether a filter still finds its page quickly.
                        "status": "reviewed" if i % 997 == 0 else STATUSES[i % len(STATUSES)],
                        "imported_at": start_time + timedelta(seconds=i),
                    }
                    for i in range(first, min(first + batch, rows))
                ],
            )
    return time.perf_counter() - t0


def time_ms(fn, repeat: int) -> dict:
    fn()  # warm the page cache and the connection pool
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2)}


def query_plans(ws: Workspace, flt: WorklistFilter, page_size: int) -> list[str]:
    """SQLite's plan for the page query: 'SCAN images' without an index would be a full scan."""
    with ws.sessions() as s:
        stmt = queries.page_statement(flt, 0, page_size)
        compiled = stmt.compile(ws.engine, compile_kwargs={"literal_binds": True})
        return [row[-1] for row in s.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--page-size", type=int, default=24)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="pneumolab-bench-") as tmp:
        ws = Workspace.open(Path(tmp) / "ws")
        seconds = fill(ws, args.rows)
        print(
            json.dumps({"figure": "insert_rows", "rows": args.rows, "seconds": round(seconds, 2)})
        )
        cases = {
            "first_page": (WorklistFilter(), 0),
            "filtered_page_status_labelled": (WorklistFilter(status="labelled"), 0),
            "filtered_page_status_and_modality": (
                WorklistFilter(status="unlabelled", modality="CR"),
                0,
            ),
            "filtered_page_rare_status": (WorklistFilter(status="reviewed"), 0),
            "last_page": (WorklistFilter(), args.rows // args.page_size),
        }
        for name, (flt, page) in cases.items():
            result = worklist(ws, flt, page, args.page_size)
            figure = time_ms(
                lambda f=flt, pg=page: worklist(ws, f, pg, args.page_size), args.repeat
            )
            print(
                json.dumps(
                    {
                        "figure": name,
                        "rows": args.rows,
                        "page_size": args.page_size,
                        "matching": result.total,
                        "shown": len(result.rows),
                        **figure,
                        "plan": query_plans(ws, flt, args.page_size),
                    }
                )
            )
        ws.dispose()


if __name__ == "__main__":
    main()
