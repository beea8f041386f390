"""Training, evaluation and prediction over a workspace: the glue between the database, the
annotation rasteriser and the training engine. One function per user action; the CLI and the
job worker both call these.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.catalog import training_pixels
from core.dataset import TrainItem, patient_split
from core.progress import NullProgress, ProgressCallback
from core.registry import VersionInfo, get_version, register_version
from core.store import atomic_write_bytes, encode_png
from core.workspace import Workspace
from db.models import AnnotationRevision, Image, ImageFinding, ModelVersion, Prediction, Reader

NEGATIVE_FINDINGS = ("reviewed_no_finding", "no_pneumonia")
ACTIVATE_RULES = ("never", "always", "if_better")


@dataclass(frozen=True)
class TrainRequest:
    """What a user asks for when starting a training run (CLI flags, Train page fields)."""

    label: str = "lung"
    arch: str = "unet"
    encoder: str = "resnet34"
    size: int = 256
    epochs: int = 20
    loss: str = "bce_iou"
    batch_size: int = 8
    lr: float = 5e-4
    optimizer: str = "adam"
    device: str = "auto"
    from_version: int | None = None
    reader: str | None = None  # None: newest revision of any reader per image
    val_fraction: float = 0.2
    seed: int = 0
    encoder_weights: str | None = None
    early_stopping_patience: int | None = 10
    activate: str = "if_better"
    augment: bool = True
    created_by: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LabelledImage:
    image_id: int
    revision_id: int | None  # None for an explicit negative without shapes
    patient_key: str | None
    width: int
    height: int
    shapes: list


def labelled_images(ws: Workspace, label: str, reader: str | None = None) -> list[LabelledImage]:
    """Images usable to learn `label`: the chosen revision has shapes of that label, or the
    image is an explicit negative (reviewed: no finding / no pneumonia) with no such shapes."""
    with ws.sessions() as s:
        rev_filter = []
        if reader is not None:
            rd = s.scalar(select(Reader).where(Reader.name == reader))
            if rd is None:
                raise ValueError(f"unknown reader {reader!r}")
            rev_filter.append(AnnotationRevision.reader_id == rd.id)
        newest = (
            select(func.max(AnnotationRevision.id).label("rid"))
            .where(*rev_filter)
            .group_by(AnnotationRevision.image_id)
            .subquery()
        )
        revs = {
            r.image_id: r
            for r in s.scalars(
                select(AnnotationRevision).join(newest, newest.c.rid == AnnotationRevision.id)
            )
        }
        find_filter = [ImageFinding.reader_id == rd.id] if reader is not None else []
        newest_finding = (
            select(func.max(ImageFinding.id).label("fid"))
            .where(*find_filter)
            .group_by(ImageFinding.image_id)
            .subquery()
        )
        negatives = set(
            s.scalars(
                select(ImageFinding.image_id)
                .join(newest_finding, newest_finding.c.fid == ImageFinding.id)
                .where(ImageFinding.finding.in_(NEGATIVE_FINDINGS))
            )
        )
        ids = sorted(set(revs) | negatives)
        images = {im.id: im for im in s.scalars(select(Image).where(Image.id.in_(ids)))}
        out = []
        for image_id in ids:
            im = images[image_id]
            rev = revs.get(image_id)
            shapes = [d for d in (rev.shapes if rev else []) if d.get("label") == label]
            if shapes or image_id in negatives:
                out.append(
                    LabelledImage(
                        image_id=image_id,
                        revision_id=rev.id if rev and shapes else None,
                        patient_key=im.patient_key,
                        width=im.width,
                        height=im.height,
                        shapes=shapes,
                    )
                )
        return out


def train_items(ws: Workspace, images: Iterable[LabelledImage], label: str) -> list[TrainItem]:
    def item(li: LabelledImage) -> TrainItem:
        shapes = [shape_from_dict(d) for d in li.shapes]
        return TrainItem(
            image_id=li.image_id,
            patient_key=li.patient_key,
            load_image=lambda: training_pixels(ws, li.image_id),
            mask=lambda: label_mask(shapes, (li.width, li.height), label),
        )

    return [item(li) for li in images]


def train(
    ws: Workspace, req: TrainRequest, progress: ProgressCallback | None = None
) -> VersionInfo:
    """Train on the workspace's labels and register the run as a new model version."""
    from core.training import TrainConfig, train_model

    progress = progress or NullProgress()
    if req.activate not in ACTIVATE_RULES:
        raise ValueError(f"activate must be one of {', '.join(ACTIVATE_RULES)}")
    labelled = labelled_images(ws, req.label, req.reader)
    if len(labelled) < 2:
        raise ValueError(
            f"only {len(labelled)} image(s) have {req.label!r} labels or an explicit negative; "
            "label at least 2 images (better dozens) before training"
        )
    init_checkpoint = None
    if req.from_version is not None:
        parent = get_version(ws, req.from_version)
        init_checkpoint = str(ws.root / parent.checkpoint_path)
    config = TrainConfig(
        arch=req.arch,
        encoder=req.encoder,
        size=req.size,
        epochs=req.epochs,
        batch_size=req.batch_size,
        lr=req.lr,
        optimizer=req.optimizer,
        loss=req.loss,
        val_fraction=req.val_fraction,
        seed=req.seed,
        device=req.device,
        encoder_weights=req.encoder_weights,
        init_checkpoint=init_checkpoint,
        early_stopping_patience=req.early_stopping_patience,
        augment=req.augment,
    )
    items = train_items(ws, labelled, req.label)
    train_set, val_set = patient_split(items, req.val_fraction, req.seed)
    if not val_set:
        raise ValueError("the patient-wise split left no validation images; label more patients")
    progress.on_log(
        f"training {req.arch}/{req.encoder} on {len(train_set)} images, "
        f"validating on {len(val_set)} ({req.label})"
    )
    run_dir = ws.models_dir / f"run-{uuid.uuid4().hex[:12]}"
    try:
        result = train_model(config, train_set, val_set, run_dir, progress)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-made stays behind
        raise
    by_id = {li.image_id: li for li in labelled}
    snapshot = {
        "label": req.label,
        "reader": req.reader,
        "n_images": len(items),
        "n_train": len(train_set),
        "n_val": len(val_set),
        "train": [[i.image_id, by_id[i.image_id].revision_id] for i in train_set],
        "val": [[i.image_id, by_id[i.image_id].revision_id] for i in val_set],
        "n_patients": len({i.patient_key or f"image:{i.image_id}" for i in items}),
    }
    version = ModelVersion(
        label=req.label,
        arch=req.arch,
        encoder=req.encoder,
        image_size=req.size,
        settings={**asdict(req), "train_config": _jsonable(asdict(config))},
        data_snapshot=snapshot,
        history=result.history,
        metrics={
            **result.val_metrics,
            "best_epoch": result.best_epoch,
            "images_per_s": result.images_per_s,
            "stopped_early": result.stopped_early,
        },
        checkpoint_path=str(Path(result.best_checkpoint).resolve().relative_to(ws.root)),
        parent_version_id=req.from_version,
        device=result.device,
        duration_s=result.duration_s,
        created_by=req.created_by,
    )
    return register_version(ws, version, req.activate)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


# --- prediction ----------------------------------------------------------------------------


def load_version_model(ws: Workspace, version: VersionInfo, device: str = "auto"):
    """(model in eval mode, meta, device) of a version's checkpoint."""
    from core.checkpoint import load_model
    from core.device import resolve_device

    dev = resolve_device(device)
    model, _spec, meta = load_model(ws.root / version.checkpoint_path, dev)
    return model, meta, dev


def prediction_relpath(version_id: int, image_id: int) -> str:
    return f"predictions/v{version_id}/{image_id}.png"


def predict_workspace(
    ws: Workspace,
    version_ref: int | str = "active",
    image_ids: Sequence[int] | None = None,
    device: str = "auto",
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int = 8,
) -> dict:
    """Run a version over workspace images; store probability PNGs and summaries."""
    from core.inference import predict_probabilities, prediction_summary

    version = get_version(ws, version_ref)
    model, meta, dev = load_version_model(ws, version, device)
    with ws.sessions() as s:
        ids = list(image_ids) if image_ids is not None else list(s.scalars(select(Image.id)))
    done = 0
    for start in range(0, len(ids), batch_size):
        if should_stop and should_stop():
            from core.jobs import JobCancelled

            raise JobCancelled()
        chunk = ids[start : start + batch_size]
        images = [training_pixels(ws, i) for i in chunk]
        probs = predict_probabilities(model, images, meta.size, dev, batch_size, meta.normalisation)
        with ws.sessions.begin() as s:
            for image_id, prob in zip(chunk, probs, strict=True):
                rel = prediction_relpath(version.id, image_id)
                atomic_write_bytes(
                    ws.store_dir / rel, encode_png(np.round(prob * 255).astype(np.uint8))
                )
                summary = prediction_summary(prob)
                row = s.scalar(
                    select(Prediction).where(
                        Prediction.model_version_id == version.id, Prediction.image_id == image_id
                    )
                ) or Prediction(model_version_id=version.id, image_id=image_id)
                row.probability_path = rel
                row.score = summary.image_score
                row.uncertainty = summary.mean_entropy
                row.boxes = [asdict(b) for b in summary.boxes]
                s.add(row)
        done += len(chunk)
        if progress:
            progress(done / max(len(ids), 1), f"predicted {done}/{len(ids)} images")
    return {"model_version": version.id, "predicted": done}


# --- job handlers (run by the worker, see core.jobs) ----------------------------------------


def run_training_job(ws: Workspace, job_id: int, settings: dict, reporter) -> dict:
    req = TrainRequest(**settings)
    version = train(ws, req, reporter)
    reporter.on_log(f"registered model version {version.id} (val Dice {version.val_dice:.4f})")
    # Predictions for review, so the review page opens instantly on the new version.
    reporter.on_log("predicting the workspace images with the new version")
    predict_workspace(ws, version.id, device=req.device, should_stop=reporter.should_stop)
    return {"model_version": version.id, "val_dice": version.val_dice, "active": version.is_active}


def run_prediction_job(ws: Workspace, job_id: int, settings: dict, reporter) -> dict:
    return predict_workspace(
        ws,
        settings.get("model", "active"),
        settings.get("image_ids"),
        settings.get("device", "auto"),
        progress=reporter.set_progress,
        should_stop=reporter.should_stop,
    )
