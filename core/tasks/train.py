"""The "train" job kind: train on the workspace's labels and register a model version.

The glue between the database (core.labels.reference), the one rasteriser and the training
engine (core.ml); the CLI and the job worker both call train().
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from core.accounts import require
from core.jobs.queue import submit_job
from core.jobs.reporter import JobReporter
from core.labels.catalog import training_pixels
from core.labels.reference import LabelledImage, labelled_images
from core.ml.dataset import TrainItem, patient_of, patient_split
from core.ml.progress import NullProgress, ProgressCallback
from core.ml.training.loop import train_model
from core.tasks.submit import TrainRequest, build_train_config, check_enough_labels
from core.versions import VersionInfo, register_version
from core.workspace import Workspace
from db.models import ModelVersion


def train_items(ws: Workspace, images: Iterable[LabelledImage], label: str) -> list[TrainItem]:
    """Lazy training items: pixels under the default window, reference masks from the one
    rasteriser."""

    def item(li: LabelledImage) -> TrainItem:
        return TrainItem(
            image_id=li.image_id,
            patient_key=li.patient_key,
            load_image=lambda: training_pixels(ws, li.image_id),
            mask=lambda: li.mask(label),
            cache_key=li.content_hash,
        )

    return [item(li) for li in images]


def train_cache_dir(ws: Workspace) -> Path:
    """Where resized training images are kept between runs (safe to delete)."""
    return ws.root / "cache" / "train"


def train(
    ws: Workspace,
    req: TrainRequest,
    progress: ProgressCallback | None = None,
    split: Callable[[list[TrainItem]], tuple[list[TrainItem], list[TrainItem]]] | None = None,
    snapshot_extra: dict | None = None,
) -> VersionInfo | None:
    """Train on the workspace's labels and register the run as a new model version.

    Under torchrun every process trains its shard (DistributedDataParallel); only rank 0
    registers the version and returns it, the other ranks return None.

    Raises ValueError / LookupError with what to do for unusable requests; nothing is
    registered and no run folder is left behind when training fails or is cancelled.
    PermissionDenied unless `req.created_by` may train (checked again when a queued job runs:
    the role is read at that moment).

    split: (train, val) of the labelled items instead of the patient-wise split (Update model
    trains on what changed); snapshot_extra: more keys for the version's data snapshot.
    """
    require(ws, req.created_by, "train")
    progress = progress or NullProgress()
    config = build_train_config(ws, req)  # checks names and numbers before any data is read
    arch, encoder, size = config.arch, config.encoder, config.size
    labelled = labelled_images(ws, req.label, req.reader, include_model=req.include_model_labels)
    check_enough_labels(len(labelled), req.label)
    items = train_items(ws, labelled, req.label)
    if split is not None:
        train_set, val_set = split(items)
    else:  # config's, not req's: a recipe sets its own validation fraction.
        train_set, val_set = patient_split(items, config.val_fraction, config.seed)
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
    # whose process is alive, even one that starts while the clean-up looks (core.jobs.worker).
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
        # Which rule chose the labels: the reference standard, the consensus or one reader.
        "reference": req.reader or "standard",
        "include_model_labels": req.include_model_labels,
        "n_images": len(items),
        "n_train": len(train_set),
        "n_val": len(val_set),
        "n_negative": sum(li.negative for li in labelled),
        "train": rows(train_set),
        "val": rows(val_set),
        "n_patients": len({patient_of(i) for i in items}),
        "split": {"rule": "patient", "val_fraction": config.val_fraction, "seed": config.seed},
        **(snapshot_extra or {}),
    }
    version = ModelVersion(
        label=req.label,
        arch=arch,
        encoder=encoder,
        image_size=size,
        settings={
            **asdict(req),
            "train_config": _jsonable(asdict(config)),
            "precision": result.precision,
        },
        data_snapshot=snapshot,
        history=_jsonable(result.history),
        metrics=_jsonable(
            {
                **result.val_metrics,
                "best_epoch": result.best_epoch,
                "images_per_s": result.images_per_s,
                "stopped_early": result.stopped_early,
                # A fine-tune's parent on the same validation images, before the first step:
                # "if_better" compares with this rather than with scores on other images.
                **(
                    {"parent_dice": result.initial_metrics["dice"]}
                    if result.initial_metrics
                    else {}
                ),
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


def run_training_job(ws: Workspace, job_id: int, settings: dict, reporter: JobReporter) -> dict:
    """The "train" job: train and register a version, then queue a prediction job for it
    over the workspace's images, so the review page opens on ready-made predictions."""
    req = TrainRequest(**settings)
    version = train(ws, req, reporter)
    assert version is not None, "jobs run in one process, never under torchrun"
    dice = version.val_dice
    reporter.on_log(
        f"registered model version {version.id}"
        + (f" (validation Dice {dice:.4f})" if dice is not None else "")
        + ("; it is now the active model" if version.is_active else "; not activated")
    )
    predict_job = submit_job(
        ws,
        "predict",
        {"model": version.id, "device": req.device, "after_job": job_id},
        req.created_by,
    )
    reporter.on_log(f"queued prediction job {predict_job} for the review page")
    return {
        "model_version": version.id,
        "val_dice": dice,
        "active": version.is_active,
        "prediction_job": predict_job,
    }
