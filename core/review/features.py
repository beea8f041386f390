"""The feature-space view: where each image sits in a model version's encoder feature space
(PCA or t-SNE to 2-D), with what a reader colours it by to spot outliers (finding, reader,
Dice against the reference standard, source, uncertainty) and its thumbnail.

Torch-free: the embedding is computed by the "embed" job (core.tasks.embed) and cached per
version in the image store; this module queues that job and reads its file.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from core.accounts import audit, require
from core.jobs.queue import submit_job
from core.jobs.records import JobInfo, list_jobs
from core.review.view import review_stamp
from core.review.worklist import review_rows
from core.versions import get_version
from core.vocab import FINDINGS
from core.workspace import Workspace
from db import queries
from db.models import AnnotationRevision, Image, ImageFinding

PROJECTIONS: dict[str, str] = {"pca": "PCA", "tsne": "t-SNE"}
COLOUR_FIELDS: dict[str, str] = {
    "finding": "Finding",
    "reader": "Reader",
    "dice": "Dice",
    "source": "Source",
    "uncertainty": "Uncertainty",
}
NO_FINDING = "no finding recorded"
NO_READER = "unlabelled"


def embedding_relpath(version_id: int) -> str:
    """Where a version's embedding lives in the image store."""
    return f"embeddings/v{version_id}.npz"


def embedding_path(ws: Workspace, version_id: int) -> Path:
    return ws.store_dir / embedding_relpath(version_id)


def has_embedding(ws: Workspace, version_id: int) -> bool:
    """Whether the version's embedding has been computed (and is reused)."""
    return embedding_path(ws, version_id).is_file()


def submit_embedding(
    ws: Workspace, version_id: int, created_by: str | None, force: bool = False
) -> int | None:
    """Queue the "embed" job of a version (LookupError for an unknown one) and return its id;
    None when the embedding is already stored (force=True computes it again). `created_by` is
    the account asking: PermissionDenied unless it may train; an audit row "train"."""
    require(ws, created_by, "train")
    version = get_version(ws, version_id)
    if has_embedding(ws, version.id) and not force:
        return None
    job = submit_job(ws, "embed", {"model": version.id}, created_by)
    audit(ws, created_by, "train", f"job {job}", {"kind": "embed", "model_version": version.id})
    return job


def embedding_job(ws: Workspace, version_id: int) -> JobInfo | None:
    """The newest "embed" job of a version (what the page shows while it computes)."""
    for job in list_jobs(ws, limit=200, kind="embed"):
        if job.settings.get("model") == version_id:
            return job
    return None


@dataclass(frozen=True)
class Embedding:
    """A stored embedding: per image its pooled encoder features and 2-D projections."""

    image_ids: np.ndarray  # (N,) int64
    features: np.ndarray  # (N, C) float32
    projections: dict[str, np.ndarray]  # name of PROJECTIONS -> (N, 2)


def read_embedding(ws: Workspace, version_id: int) -> Embedding:
    """The stored embedding of a version; LookupError saying what to do when there is none."""
    path = embedding_path(ws, version_id)
    if not path.is_file():
        raise LookupError(
            f"Model version {version_id} has no feature-space embedding yet: compute it "
            "(the Feature space page's Compute button queues the job)."
        )
    with np.load(path) as data:
        return Embedding(
            image_ids=data["image_ids"].astype(np.int64),
            features=data["features"],
            projections={name: data[name] for name in PROJECTIONS},
        )


@dataclass(frozen=True)
class FeaturePoint:
    """One image in the feature-space scatter."""

    image_id: int
    display_name: str  # IMG-000042: never a source name
    x: float
    y: float
    finding: str  # display name of the newest finding of any reader, or NO_FINDING
    readers: tuple[str, ...]  # readers with labels or a finding on the image
    dice: float | None  # stored prediction vs the reference standard (None: no labels)
    source: str  # source format / modality, e.g. "jpeg / OT"
    uncertainty: float | None  # mean entropy of the prediction (None: not predicted)
    thumbnail: str | None  # data URL of the stored thumbnail PNG

    @property
    def reader(self) -> str:
        return ", ".join(self.readers) if self.readers else NO_READER


def _thumbnail_url(ws: Workspace, rel: str | None) -> str | None:
    if not rel:
        return None
    path = ws.store_dir / rel
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def feature_stamp(ws: Workspace, version_id: int) -> tuple:
    """Changes when the embedding, labels, findings or predictions change: a cache key."""
    path = embedding_path(ws, version_id)
    return (path.stat().st_mtime_ns if path.is_file() else None, *review_stamp(ws, version_id))


def feature_points(ws: Workspace, version_id: int, projection: str = "pca") -> list[FeaturePoint]:
    """Every embedded image of a version at its 2-D position under `projection` ("pca" or
    "tsne"), with what the scatter colours and shows. LookupError when not computed yet."""
    if projection not in PROJECTIONS:
        raise ValueError(
            f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}"
        )
    version = get_version(ws, version_id)
    emb = read_embedding(ws, version.id)
    ids = [int(i) for i in emb.image_ids]
    xy = emb.projections[projection]
    with ws.sessions() as s:
        images = {
            row.id: row
            for row in s.execute(
                select(
                    Image.id,
                    Image.display_name,
                    Image.source_format,
                    Image.modality,
                    Image.thumbnail_path,
                ).where(queries.among(s, Image.id, ids))
            )
        }
        readers: dict[int, set[str]] = {i: set() for i in ids}
        for rev, name in queries.newest_per_reader(s, AnnotationRevision, image_ids=ids):
            if rev.shapes:
                readers[rev.image_id].add(name)
        finding: dict[int, str] = {}
        for row, name in queries.newest_per_reader(s, ImageFinding, image_ids=ids):
            readers[row.image_id].add(name)
            finding.setdefault(row.image_id, row.finding)  # newest first: the first one wins
    scored = {r.image_id: r for r in review_rows(ws, version.id, image_ids=ids)}
    points = []
    for (x, y), image_id in zip(xy, ids, strict=True):
        image = images.get(image_id)
        if image is None:  # deleted since the embedding was computed
            continue
        row = scored.get(image_id)
        points.append(
            FeaturePoint(
                image_id=image_id,
                display_name=image.display_name,
                x=float(x),
                y=float(y),
                finding=FINDINGS.get(finding.get(image_id, ""), NO_FINDING),
                readers=tuple(sorted(readers[image_id])),
                dice=None if row is None else row.dice,
                source=f"{image.source_format} / {image.modality}",
                uncertainty=None if row is None else row.uncertainty,
                thumbnail=_thumbnail_url(ws, image.thumbnail_path),
            )
        )
    return points
