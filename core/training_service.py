"""Training, evaluation and prediction over a workspace: the glue between the database, the
annotation rasteriser and the training engine. One function per user action; the CLI and the
job worker both call these.
"""

from __future__ import annotations

import json
import os
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
from core.dataset import TrainItem, patient_of, patient_split
from core.progress import NullProgress, ProgressCallback
from core.registry import VersionInfo, get_version, register_version
from core.store import atomic_write_bytes, encode_png
from core.workspace import Workspace
from db.models import (
    AnnotationRevision,
    Image,
    ImageFinding,
    LabelClass,
    ModelVersion,
    Prediction,
    Reader,
)

NEGATIVE_FINDINGS = ("reviewed_no_finding", "no_pneumonia")
# Anatomy every chest X-ray shows: "no pneumonia" says nothing about where the lungs are, so
# negative findings never turn an image into an empty-mask example of these labels.
ANATOMY_LABELS = frozenset({"lung"})
ACTIVATE_RULES = ("never", "always", "if_better")
MIN_TRAINING_IMAGES = 3  # fewer cannot give a patient-wise train/validation split
CONSENSUS = "consensus"
DEFAULT_ARCH, DEFAULT_ENCODER, DEFAULT_SIZE = "unet", "resnet34", 256


@dataclass(frozen=True)
class TrainRequest:
    """What a user asks for when starting a training run (CLI flags, Train page fields).

    arch, encoder and size left as None take the parent's when fine-tuning (from_version),
    else unet / resnet34 / 256. reader: None uses the newest revision of any reader per image,
    a name that reader's newest, "consensus" the pixel-wise majority of every reader's newest.
    """

    label: str = "lung"
    arch: str | None = None
    encoder: str | None = None
    size: int | None = None
    epochs: int = 20
    loss: str = "bce_iou"
    batch_size: int = 8
    lr: float = 5e-4
    optimizer: str = "adam"
    device: str = "auto"
    from_version: int | None = None
    reader: str | None = None
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
    """One image usable for training `label`, with the shapes its mask is drawn from.

    shape_sets holds one list of `label` shapes per voting revision (one unless the consensus
    rule is used); an explicit negative has an empty list. revision_ids are those revisions,
    for the model version's data snapshot.
    """

    image_id: int
    revision_ids: tuple[int, ...]
    patient_key: str | None
    content_hash: str
    width: int
    height: int
    shape_sets: tuple[tuple[dict, ...], ...]

    @property
    def negative(self) -> bool:
        return not any(self.shape_sets)


def _newest_per_reader(s, model, reader_id: int | None) -> list:
    """Newest row of `model` (revision or finding) per (image, reader), optionally of one
    reader."""
    newest = (
        select(func.max(model.id).label("nid"))
        .where(*([model.reader_id == reader_id] if reader_id is not None else []))
        .group_by(model.image_id, model.reader_id)
        .subquery()
    )
    return list(s.scalars(select(model).join(newest, newest.c.nid == model.id)))


def _check_label(s, label: str) -> None:
    names = sorted(s.scalars(select(LabelClass.name)))
    if label not in names:
        raise ValueError(f"unknown label {label!r}; labels in this workspace: {', '.join(names)}")


def labelled_images(ws: Workspace, label: str, reader: str | None = None) -> list[LabelledImage]:
    """Images usable to learn `label`: the chosen revision(s) have shapes of that label, or
    (for finding labels, not anatomy) the newest finding is an explicit negative and no chosen
    revision has such shapes. Raises ValueError for an unknown label or reader."""
    consensus = reader == CONSENSUS
    with ws.sessions() as s:
        _check_label(s, label)
        reader_id = None
        if reader is not None and not consensus:
            rd = s.scalar(select(Reader).where(Reader.name == reader))
            if rd is None:
                known = ", ".join(sorted(s.scalars(select(Reader.name))))
                raise ValueError(f"unknown reader {reader!r}; readers: {known}, or consensus")
            reader_id = rd.id
        # Each reader's newest revision and finding per image; without the consensus rule
        # only the newest of those that speak about `label` counts.
        votes: dict[int, list[AnnotationRevision]] = {}
        for rev in _newest_per_reader(s, AnnotationRevision, reader_id):
            if any(d.get("label") == label for d in rev.shapes):
                votes.setdefault(rev.image_id, []).append(rev)
        if not consensus:
            votes = {i: [max(revs, key=lambda r: r.id)] for i, revs in votes.items()}
        negatives: dict[int, int] = {}  # image -> number of readers saying "nothing there"
        if label not in ANATOMY_LABELS:
            findings: dict[int, list[ImageFinding]] = {}
            for f in _newest_per_reader(s, ImageFinding, reader_id):
                findings.setdefault(f.image_id, []).append(f)
            for image_id, rows in findings.items():
                if consensus:  # a reader who drew shapes has voted already
                    drew = {r.reader_id for r in votes.get(image_id, [])}
                    rows = [f for f in rows if f.reader_id not in drew]
                else:
                    rows = [max(rows, key=lambda f: f.id)]
                count = sum(f.finding in NEGATIVE_FINDINGS for f in rows)
                if count:
                    negatives[image_id] = count
        ids = sorted(set(votes) | set(negatives))
        images = {im.id: im for im in s.scalars(select(Image).where(Image.id.in_(ids)))}
        out = []
        for image_id in ids:
            im, revs = images[image_id], sorted(votes.get(image_id, []), key=lambda r: r.id)
            sets = [tuple(d for d in r.shapes if d.get("label") == label) for r in revs]
            # A reader's "no finding" is an empty vote in the consensus; otherwise a positive
            # revision outranks a negative finding (drawn shapes are the more specific label).
            if consensus:
                sets += [()] * negatives.get(image_id, 0)
            elif not sets:
                sets = [()]
            out.append(
                LabelledImage(
                    image_id=image_id,
                    revision_ids=tuple(r.id for r in revs),
                    patient_key=im.patient_key,
                    content_hash=im.content_hash,
                    width=im.width,
                    height=im.height,
                    shape_sets=tuple(sets),
                )
            )
        return out


def consensus_mask(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Pixels marked by more than half of the votes (one vote: that mask; two: both)."""
    if len(masks) == 1:
        return masks[0]
    count = np.sum(np.stack(masks), axis=0)
    return count * 2 > len(masks)


def train_items(ws: Workspace, images: Iterable[LabelledImage], label: str) -> list[TrainItem]:
    """Lazy training items: pixels under the default window, masks from the one rasteriser."""

    def item(li: LabelledImage) -> TrainItem:
        shape_sets = [[shape_from_dict(d) for d in shapes] for shapes in li.shape_sets]

        def mask() -> np.ndarray:
            size = (li.width, li.height)
            return consensus_mask([label_mask(shapes, size, label) for shapes in shape_sets])

        return TrainItem(
            image_id=li.image_id,
            patient_key=li.patient_key,
            load_image=lambda: training_pixels(ws, li.image_id),
            mask=mask,
            cache_key=li.content_hash,
        )

    return [item(li) for li in images]


def train_cache_dir(ws: Workspace) -> Path:
    """Where resized training images are kept between runs (safe to delete)."""
    return ws.root / "cache" / "train"


def resolve_architecture(ws: Workspace, req: TrainRequest) -> tuple[str, str, int, str | None]:
    """(arch, encoder, size, parent checkpoint path) with the parent's values as defaults."""
    if req.from_version is None:
        return (
            req.arch or DEFAULT_ARCH,
            req.encoder or DEFAULT_ENCODER,
            req.size or DEFAULT_SIZE,
            None,
        )
    parent = get_version(ws, req.from_version)
    return (
        req.arch or parent.arch,
        req.encoder or parent.encoder,
        req.size or parent.image_size,
        str(ws.root / parent.checkpoint_path),
    )


def train(
    ws: Workspace, req: TrainRequest, progress: ProgressCallback | None = None
) -> VersionInfo | None:
    """Train on the workspace's labels and register the run as a new model version.

    Under torchrun every process trains its shard (DistributedDataParallel); only rank 0
    registers the version and returns it, the other ranks return None.

    Raises ValueError / LookupError with what to do for unusable requests; nothing is
    registered and no run folder is left behind when training fails or is cancelled.
    """
    from core.training import TrainConfig, train_model

    progress = progress or NullProgress()
    if req.activate not in ACTIVATE_RULES:
        raise ValueError(f"activate must be one of {', '.join(ACTIVATE_RULES)}")
    arch, encoder, size, init_checkpoint = resolve_architecture(ws, req)
    config = TrainConfig(  # validates names and numbers before any data is read
        arch=arch,
        encoder=encoder,
        size=size,
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
    labelled = labelled_images(ws, req.label, req.reader)
    if len(labelled) < MIN_TRAINING_IMAGES:
        raise ValueError(
            f"only {len(labelled)} image(s) have {req.label!r} labels"
            + ("" if req.label in ANATOMY_LABELS else " or an explicit negative")
            + f"; label at least {MIN_TRAINING_IMAGES} images (better dozens) before training"
        )
    items = train_items(ws, labelled, req.label)
    train_set, val_set = patient_split(items, req.val_fraction, req.seed)
    if not val_set:
        raise ValueError(
            "the patient-wise split left no validation images; label images of more patients "
            "or raise the validation fraction"
        )
    progress.on_log(
        f"training {arch}/{encoder} on {len(train_set)} images, "
        f"validating on {len(val_set)} ({req.label})"
    )
    # The creating process is in the name: orphan clean-up never removes the folder of a run
    # whose process is alive, even one that starts while the clean-up looks (jobs.py).
    run_dir = ws.models_dir / f"run-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        result = train_model(
            config, train_set, val_set, run_dir, progress, cache_dir=train_cache_dir(ws)
        )
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-made stays behind
        raise
    if os.environ.get("RANK", "0") != "0":
        # Launched by torchrun: rank 0 saved the checkpoint and registers the one version.
        shutil.rmtree(run_dir, ignore_errors=True)
        return None
    by_id = {li.image_id: li for li in labelled}

    def rows(part: Sequence[TrainItem]) -> list[list]:
        return [[i.image_id, list(by_id[i.image_id].revision_ids)] for i in part]

    snapshot = {
        "label": req.label,
        "reader": req.reader,
        "n_images": len(items),
        "n_train": len(train_set),
        "n_val": len(val_set),
        "n_negative": sum(li.negative for li in labelled),
        "train": rows(train_set),
        "val": rows(val_set),
        "n_patients": len({patient_of(i) for i in items}),
        "split": {"rule": "patient", "val_fraction": req.val_fraction, "seed": req.seed},
    }
    version = ModelVersion(
        label=req.label,
        arch=arch,
        encoder=encoder,
        image_size=size,
        settings={**asdict(req), "train_config": _jsonable(asdict(config))},
        data_snapshot=snapshot,
        history=_jsonable(result.history),
        metrics=_jsonable(
            {
                **result.val_metrics,
                "best_epoch": result.best_epoch,
                "images_per_s": result.images_per_s,
                "stopped_early": result.stopped_early,
            }
        ),
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


def run_prediction_job(ws: Workspace, job_id: int, settings: dict, reporter) -> dict:
    return predict_workspace(
        ws,
        settings.get("model", "active"),
        settings.get("image_ids"),
        settings.get("device", "auto"),
        progress=reporter.set_progress,
        should_stop=reporter.should_stop,
    )
