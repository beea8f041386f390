"""Asking for work: a training request, checked and turned into its one TrainConfig before any
job is queued, so a bad setting fails at once with what to change, not minutes later in the
worker. Torch-free: the Train page imports this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from core.accounts import audit, require
from core.jobs.queue import submit_job
from core.labels.reference import labelled_images
from core.ml.training.config import TrainConfig
from core.ml.training.recipes import get_recipe
from core.versions import get_version
from core.vocab import (
    ACTIVATE_RULES,
    ANATOMY_LABELS,
    ARCHITECTURES,
    DEFAULT_ARCH,
    DEFAULT_ENCODER,
    DEFAULT_SIZE,
)
from core.workspace import Workspace

MIN_TRAINING_IMAGES = 3  # fewer cannot give a patient-wise train/validation split


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
    # Let model-made revisions (accepted or uncorrected predictions) count as truth. Off by
    # default: a model is never trained on its own output unless someone asks for it.
    include_model_labels: bool = False
    created_by: str | None = None
    extra: dict = field(default_factory=dict)
    # A named recipe (core.ml.training.recipes: quick, best, update) sets the schedule,
    # augmentation, test-time augmentation and the label's post-processing; arch, encoder and
    # size given here (or a fine-tune parent's) still win. None: the fields above, as given.
    recipe: str | None = None


def build_train_config(ws: Workspace, req: TrainRequest) -> TrainConfig:
    """The one TrainConfig of a request: the parent's network and size as defaults when
    fine-tuning, every name and number checked. Raises ValueError (LookupError for an unknown
    parent version) saying what to change. Used when a job is submitted and when it runs."""
    if req.activate not in ACTIVATE_RULES:
        raise ValueError(f"activate must be one of {', '.join(ACTIVATE_RULES)}")
    # `is None`, not `or`: a size of 0 was asked for and must be refused by TrainConfig, not
    # silently replaced by the default.
    recipe = get_recipe(req.recipe).config_fields(req.label) if req.recipe is not None else {}
    arch = recipe.pop("arch", DEFAULT_ARCH) if req.arch is None else req.arch
    encoder = recipe.pop("encoder", DEFAULT_ENCODER) if req.encoder is None else req.encoder
    size = recipe.pop("size", DEFAULT_SIZE) if req.size is None else req.size
    for key in ("arch", "encoder", "size"):
        recipe.pop(key, None)
    parent_checkpoint = None
    if req.from_version is not None:
        parent = get_version(ws, req.from_version)
        arch = parent.arch if req.arch is None else req.arch
        encoder = parent.encoder if req.encoder is None else req.encoder
        size = parent.image_size if req.size is None else req.size
        if (parent.arch, parent.encoder) != (arch, encoder):
            raise ValueError(
                f"version {parent.id} is a {parent.arch}/{parent.encoder} model; choose that "
                "architecture and encoder to fine-tune it, or train from scratch"
            )
        parent_checkpoint = str(ws.root / parent.checkpoint_path)
        parent_config = (parent.settings or {}).get("train_config") or {}
        if req.recipe == "update":
            recipe.update(update_fields(parent_config))
        if recipe:  # the network is the parent's: its decoder, not the recipe's
            recipe["decoder_channels"] = parent_config.get("decoder_channels")
    if arch != "unet":  # a recipe's U-Net decoder widths do not fit another network
        recipe.pop("decoder_channels", None)
    if recipe:
        return TrainConfig(
            **{
                **recipe,
                "arch": arch,
                "encoder": encoder,
                "size": size,
                "seed": req.seed,
                "device": req.device,
                "encoder_weights": req.encoder_weights,
                "init_checkpoint": parent_checkpoint,
            }
        )
    return TrainConfig(
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
        init_checkpoint=parent_checkpoint,
        early_stopping_patience=req.early_stopping_patience,
        augment=req.augment,
    )


def update_fields(parent_config: dict) -> dict:
    """What an update keeps of its parent's training: augmentation, optimizer, loss, batch,
    validation share, TTA and post-processing, at a fifth of its learning rate (a fine-tune
    that changes the recipe's augmentation unlearns more than the corrections teach)."""
    keep = ("augment", "augment_preset", "optimizer", "loss", "weight_decay", "batch_size")
    keep += ("val_fraction", "tta", "postprocess", "threshold")
    out = {k: parent_config[k] for k in keep if k in parent_config}
    if "lr" in parent_config:
        out["lr"] = parent_config["lr"] * UPDATE_LR_FACTOR
    return out


UPDATE_LR_FACTOR = 0.2


def check_enough_labels(n_images: int, label: str) -> None:
    """ValueError unless there are enough labelled images for a patient-wise split."""
    if n_images < MIN_TRAINING_IMAGES:
        raise ValueError(
            f"only {n_images} image(s) have {label!r} labels"
            + ("" if label in ANATOMY_LABELS else " or an explicit negative")
            + f"; label at least {MIN_TRAINING_IMAGES} images (better dozens) before training"
        )


def submit_prediction(
    ws: Workspace, version_id: int, created_by: str | None, device: str = "auto"
) -> int:
    """Queue a prediction job of a model version over the workspace's images (LookupError
    for an unknown version). `created_by` is the account asking: PermissionDenied unless it
    may train. Returns the job id; an audit row "train"."""
    require(ws, created_by, "train")
    version = get_version(ws, version_id)
    job = submit_job(ws, "predict", {"model": version.id, "device": device}, created_by)
    audit(ws, created_by, "train", f"job {job}", {"kind": "predict", "model_version": version.id})
    return job


def submit_training(ws: Workspace, request: TrainRequest) -> int:
    """Check a TrainRequest (names, numbers, enough labels, fine-tune parent) and queue it.
    Returns the job id. `request.created_by` is the account asking: PermissionDenied unless
    it may train; an audit row "train"."""
    require(ws, request.created_by, "train")
    build_train_config(ws, request)
    found = labelled_images(
        ws, request.label, request.reader, include_model=request.include_model_labels
    )
    check_enough_labels(len(found), request.label)
    job = submit_job(ws, "train", asdict(request), request.created_by)
    audit(ws, request.created_by, "train", f"job {job}", {"kind": "train", "label": request.label})
    return job


def compare_requests(
    ws: Workspace, archs: Sequence[str], request: TrainRequest
) -> tuple[list[str], list[TrainRequest]]:
    """(architectures, one TrainRequest each) of an architecture comparison: the request's
    settings for every architecture, never activated, trained from scratch for all its epochs
    (no early stopping: the same budget for each). Every request is checked before any runs
    (ValueError saying what to change)."""
    names = list(dict.fromkeys(archs))  # each once, in the order given
    if not names:
        raise ValueError(f"choose architectures to compare: {', '.join(ARCHITECTURES)}")
    unknown = [a for a in names if a not in ARCHITECTURES]
    if unknown:
        raise ValueError(
            f"unknown architecture {unknown[0]!r}; valid names: {', '.join(ARCHITECTURES)}"
        )
    if "segnet" in names and request.encoder_weights:
        raise ValueError("SegNet takes no encoder weights; compare without encoder weights")
    requests = [
        replace(request, arch=a, activate="never", from_version=None, early_stopping_patience=None)
        for a in names
    ]
    for req in requests:
        build_train_config(ws, req)
    return names, requests


def submit_compare(ws: Workspace, archs: Sequence[str], request: TrainRequest) -> int:
    """Check an architecture comparison (names, numbers, enough labels) and queue it as one
    "compare" job training each architecture in turn. Returns the job id. PermissionDenied
    unless `request.created_by` may train; an audit row "train"."""
    require(ws, request.created_by, "train")
    names, _ = compare_requests(ws, archs, request)
    found = labelled_images(
        ws, request.label, request.reader, include_model=request.include_model_labels
    )
    check_enough_labels(len(found), request.label)
    settings = {"archs": names, "request": asdict(request)}
    job = submit_job(ws, "compare", settings, request.created_by)
    audit(ws, request.created_by, "train", f"job {job}", {"kind": "compare", "archs": names})
    return job
