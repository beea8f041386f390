"""The one vocabulary of PneumoLab: every name a user picks, the database stores or a page
shows as a choice. Torch-free and database-free, so pages, services, the CLI and the
database's constraints (migration 0003, checked by tests/db) all read the same names.

Display names sit beside the stored names where a page shows them.
"""

from __future__ import annotations

# --- image-level findings ---------------------------------------------------------------------

FINDINGS: dict[str, str] = {
    "pneumonia": "Pneumonia",
    "no_pneumonia": "No pneumonia",
    "uncertain": "Uncertain",
    "reviewed_no_finding": "Reviewed: no finding",
}
# Findings that say "nothing here": an empty mask to learn from, of the labels they cover.
NEGATIVE_FINDINGS: frozenset[str] = frozenset({"reviewed_no_finding", "no_pneumonia"})
# "Reviewed: no finding" covers every finding label; "no pneumonia" only pneumonia.
NEGATIVE_FINDING_COVERS: dict[str, frozenset[str] | None] = {
    "reviewed_no_finding": None,
    "no_pneumonia": frozenset({"pneumonia"}),
}
# Anatomy every chest X-ray shows: "no pneumonia" says nothing about where the lungs are, so
# negative findings never turn an image into an empty-mask example of these labels.
ANATOMY_LABELS: frozenset[str] = frozenset({"lung"})
DEFAULT_LABELS: dict[str, str] = {"pneumonia": "#ff3b30", "lung": "#34c759"}


def says_absent(finding: str, label: str) -> bool:
    """True when an image-level `finding` says there is no `label` region on the image."""
    if finding not in NEGATIVE_FINDINGS or label in ANATOMY_LABELS:
        return False
    covers = NEGATIVE_FINDING_COVERS[finding]
    return covers is None or label in covers


# --- images and revisions ---------------------------------------------------------------------

# Worklist status of an image (denormalised from its revisions, findings and reviews).
STATUSES: tuple[str, ...] = ("unlabelled", "labelled", "negative", "reviewed")
# Where a revision's shapes came from.
REVISION_SOURCES: tuple[str, ...] = ("manual", "import", "model")
# Where a revision came from (core.labels.provenance): a reader drew it, it was imported, a
# model's prediction was accepted as it was / opened for correction, or a reader corrected one.
REVISION_ORIGINS: tuple[str, ...] = ("drawn", "imported", "accepted", "pre_annotation", "corrected")
# Model output: not truth until a reviewer adjudicates it (core.labels.reference).
MODEL_ORIGINS: frozenset[str] = frozenset({"accepted", "pre_annotation"})
# File suffixes the importer and the CLI treat as images (content decides the format).
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".dcm", ".dicom"})
DICOM_SUFFIXES: frozenset[str] = frozenset({".dcm", ".dicom"})

# --- readers ----------------------------------------------------------------------------------

ROLES: tuple[str, ...] = ("annotator", "reviewer", "admin")
# Reader name whose "labels" are the pixel-wise majority of every reader's newest revision.
CONSENSUS = "consensus"

# --- review -----------------------------------------------------------------------------------

# "adjudicated": a reviewer made one revision the image's reference standard.
REVIEW_DECISIONS: tuple[str, ...] = (
    "accepted",
    "rejected",
    "corrected",
    "signed_off",
    "adjudicated",
)
# Roles that may adjudicate an image's reference standard.
REVIEWER_ROLES: frozenset[str] = frozenset({"reviewer", "admin"})

# --- accounts and permissions (core.accounts) -------------------------------------------------

# What a core service asks for (core.accounts.require); the README's permission table.
PERMISSIONS: dict[str, str] = {
    "view": "see images, labels, predictions and models",
    "label": "save revisions, findings and drafts of one's own",
    "review": "accept/reject predictions, sign off, adjudicate",
    "import": "import images and LabelMe files",
    "train": "train, predict, compare, embed; cancel jobs",
    "activate": "activate or roll back a model version",
    "export": "export images and labels",
    "admin": "accounts, label classes, settings, the audit log",
}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "annotator": frozenset({"view", "label"}),
    "reviewer": frozenset({"view", "label", "review"}),
    "admin": frozenset(PERMISSIONS),
}
# What the audit log records (core.accounts.audit).
AUDIT_ACTIONS: tuple[str, ...] = (
    "login",
    "login_failed",
    "logout",
    "import",
    "save",
    "accept",
    "reject",
    "sign_off",
    "adjudicate",
    "correct",
    "train",
    "cancel",
    "activate",
    "export",
    "label_added",
    "account_created",
    "account_changed",
    "settings_changed",
)

# --- jobs -------------------------------------------------------------------------------------

JOB_STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_JOB_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

# --- models and training ----------------------------------------------------------------------

ARCHITECTURES: dict[str, str] = {
    "unet": "U-Net",
    "deeplabv3": "DeepLabV3",
    "deeplabv3plus": "DeepLabV3+",
    # Ours (core.ml.segnet): a fixed VGG-16-bn encoder, so the encoder name is stored, ignored.
    "segnet": "SegNet",
}
ENCODERS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50")
LOSSES: dict[str, str] = {
    "bce_iou": "BCE + IoU (soft Jaccard)",
    "bce": "BCE",
    "dice": "Dice",
    "hybrid": "Jaccard + SSIM + focal",
}
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# When a finished training run becomes the active model version.
ACTIVATE_RULES: tuple[str, ...] = ("never", "always", "if_better")
DEFAULT_ARCH, DEFAULT_ENCODER, DEFAULT_SIZE = "unet", "resnet34", 256

UNET_DEPTH = 5  # smp's U-Net decoder has one block per encoder stage


def check_decoder_channels(arch: str, decoder_channels) -> tuple[int, ...] | None:
    """decoder_channels as a tuple of UNET_DEPTH positive widths (None passes); ValueError
    saying what to give otherwise."""
    if decoder_channels is None:
        return None
    if arch != "unet":
        raise ValueError(
            f"decoder_channels set the U-Net decoder's widths; {arch} has no such decoder "
            "(leave them out, or train a U-Net)."
        )
    widths = tuple(decoder_channels)
    if len(widths) != UNET_DEPTH or not all(
        isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in widths
    ):
        raise ValueError(
            f"decoder_channels must be {UNET_DEPTH} positive whole numbers, deepest first "
            f"(e.g. 256, 128, 64, 32, 16), got {list(widths)}."
        )
    return widths
