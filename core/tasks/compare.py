"""The "compare" job kind: train several architectures on the same patient-wise split with
the same budget, register each as a model version (never activated) and report their
validation scores side by side.

Same split: every run goes through core.tasks.train.train with the same label, reader,
val_fraction and seed, and patient_split is seeded, so each run validates on the same
images; compare() checks the stored data snapshots and refuses to report otherwise.
Same budget: the same epochs, size, batch, optimiser, loss and augmentation, with early
stopping off, so no architecture stops sooner than another.
Never activated: each run asks for activate="never"; only in a workspace with no active
version at all does the first one become active (core.versions.register_version's rule:
there is nothing to protect), and each row's "active" says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.jobs.reporter import JobReporter
from core.ml.progress import NullProgress, ProgressCallback
from core.tasks.submit import TrainRequest, compare_requests
from core.tasks.train import train
from core.versions import VersionInfo
from core.workspace import Workspace

# Stored metrics reported per architecture (image-level ones exist only when the validation
# set has both positive and negative images).
SCORES: dict[str, str] = {
    "val_dice": "dice",
    "val_iou": "iou",
    "pixel_accuracy": "pixel_accuracy",
    "image_auc": "image_auc",
    "image_sensitivity": "image_sensitivity",
    "image_specificity": "image_specificity",
}


class _RunProgress:
    """One run's progress as part of the whole comparison: epochs count on across runs, so
    the job's progress bar goes 0..1 once; log lines name the architecture."""

    def __init__(self, base: ProgressCallback, arch: str, index: int, n_runs: int) -> None:
        self.base, self.arch, self.index, self.n_runs = base, arch, index, n_runs
        self.epochs = 1

    def _epoch(self, epoch: int) -> int:
        return self.index * self.epochs + epoch

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.epochs = epochs
        self.base.on_epoch_start(self._epoch(epoch), epochs * self.n_runs)

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        self.base.on_step(self._epoch(epoch), step, steps, loss)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.base.on_epoch_end(self._epoch(epoch), metrics)

    def on_log(self, message: str) -> None:
        self.base.on_log(f"[{self.arch}] {message}")

    def should_stop(self) -> bool:
        return self.base.should_stop()


def split_of(version: VersionInfo) -> tuple[list[int], list[int]]:
    """(train image ids, validation image ids) of a version's data snapshot, sorted."""
    snap = version.data_snapshot
    return sorted(r[0] for r in snap["train"]), sorted(r[0] for r in snap["val"])


def version_scores(version: VersionInfo) -> dict:
    """What the comparison reports of one version: its stored metrics, duration, best epoch."""
    m = version.metrics
    row = {"model_version": version.id, "encoder": version.encoder}
    row.update({name: m[key] for name, key in SCORES.items() if key in m})
    row["best_epoch"] = m.get("best_epoch")
    row["duration_s"] = round(version.duration_s, 1)
    row["device"] = version.device
    row["active"] = version.is_active
    return row


def compare(
    ws: Workspace,
    archs: Sequence[str],
    base: TrainRequest,
    progress: ProgressCallback | None = None,
) -> dict:
    """Train each of `archs` with the settings of `base` (its arch, activate, from_version
    and early stopping replaced) and return the side-by-side report (JSON-able).

    Raises ValueError for unusable requests (checked for every architecture before the first
    run) and RuntimeError if the runs did not share one split.
    """
    progress = progress or NullProgress()
    archs, requests = compare_requests(ws, archs, base)
    versions: list[VersionInfo] = []
    for index, (arch, req) in enumerate(zip(archs, requests, strict=True)):
        progress.on_log(f"comparison: training {arch} ({index + 1}/{len(archs)})")
        version = train(ws, req, _RunProgress(progress, arch, index, len(archs)))
        assert version is not None, "comparisons run in one process, never under torchrun"
        versions.append(version)
    first = split_of(versions[0])
    differing = [v.id for v in versions if split_of(v) != first]
    if differing:
        raise RuntimeError(
            f"model versions {differing} were validated on other images than version "
            f"{versions[0].id}; the comparison is not like for like"
        )
    snap = versions[0].data_snapshot
    return {
        "comparison": {arch: version_scores(v) for arch, v in zip(archs, versions, strict=True)},
        "label": base.label,
        "size": versions[0].image_size,
        "epochs": base.epochs,
        "n_train": snap["n_train"],
        "n_val": snap["n_val"],
        "n_negative": snap.get("n_negative", 0),
        "same_split": True,
        "split": snap["split"],
    }


def run_compare_job(ws: Workspace, job_id: int, settings: dict, reporter: JobReporter) -> dict:
    """The "compare" job: settings = {"archs": [...], "request": TrainRequest fields}."""
    base = TrainRequest(**settings["request"])
    result = compare(ws, settings["archs"], base, reporter)
    reporter.on_log(
        "comparison done: "
        + ", ".join(
            f"{arch} v{row['model_version']} Dice {row.get('val_dice', float('nan')):.4f}"
            for arch, row in result["comparison"].items()
        )
    )
    return result
