"""The review worklist's scores, kept on disk per (version, threshold, ground-truth rule), so
the Review page opens without rescoring every image.

Scoring a row reads the image's probability map and rasterises its readers' labels: tens of
milliseconds an image, seconds for a workspace. What a row depends on is the image's own
revisions, findings, reviews and prediction, so each cached row carries those images' stamps
(newest ids and the prediction's time); an open rescoring only the images whose stamps moved
(a reader's correction rescores one image, not all). The prediction job fills the cache for
the page's defaults when it finishes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import func, select

from annotations.files import atomic_write_bytes
from core.review.worklist import ReviewRow, review_rows
from core.workspace import Workspace
from db.models import AnnotationRevision, ImageFinding, Prediction, Review

FORMAT = 1


def _cache_path(ws: Workspace, version_id: int, threshold: float, reader: str | None) -> Path:
    rule = hashlib.sha256(repr(reader).encode()).hexdigest()[:16]  # reader names stay out
    name = f"v{version_id}_t{round(threshold * 1000):04d}_{rule}.json"
    return ws.root / "cache" / "review" / name


def image_stamps(ws: Workspace, version_id: int) -> dict[int, list]:
    """image id -> what its row depends on, for every image the version predicted."""
    with ws.sessions() as s:
        stamps: dict[int, list] = {
            image_id: [str(created), None, None, None]
            for image_id, created in s.execute(
                select(Prediction.image_id, Prediction.created_at).where(
                    Prediction.model_version_id == version_id
                )
            )
        }
        for slot, model in ((1, AnnotationRevision), (2, ImageFinding), (3, Review)):
            for image_id, newest in s.execute(
                select(model.image_id, func.max(model.id)).group_by(model.image_id)
            ):
                if image_id in stamps:
                    stamps[image_id][slot] = newest
    return stamps


def _row(data: dict) -> ReviewRow:
    return ReviewRow(**{**data, "reviews": tuple(data.get("reviews", ()))})


def cached_review_rows(
    ws: Workspace, version_id: int, threshold: float = 0.5, reader: str | None = None
) -> list[ReviewRow]:
    """review_rows(ws, version_id, threshold, reader), rescoring only images whose labels,
    findings, reviews or prediction changed since the cache was written (in image order)."""
    path = _cache_path(ws, version_id, threshold, reader)
    stamps = image_stamps(ws, version_id)
    cached: dict[int, ReviewRow] = {}
    seen: dict[int, list] = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(path.read_bytes())
        if data.get("format") == FORMAT:
            seen = {int(k): v for k, v in data["stamps"].items()}
            cached = {r["image_id"]: _row(r) for r in data["rows"]}
    stale = [i for i, stamp in stamps.items() if seen.get(i) != stamp or i not in cached]
    if stale:
        for row in review_rows(ws, version_id, threshold, reader, image_ids=stale):
            cached[row.image_id] = row
    rows = [cached[i] for i in sorted(stamps) if i in cached]
    if stale or set(cached) != set(stamps):
        payload = {
            "format": FORMAT,
            "stamps": {str(i): stamps[i] for i in stamps},
            "rows": [asdict(r) for r in rows],
        }
        with contextlib.suppress(OSError):  # a cache: failing to write loses nothing
            atomic_write_bytes(path, json.dumps(payload).encode())
    return rows
