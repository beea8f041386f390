"""The "predict" job kind: run a model version over workspace images and store probability
maps and summaries for the review page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
from sqlalchemy import select

from annotations.files import atomic_write_bytes
from core.errors import Cancelled
from core.imaging.png import encode_png
from core.labels.catalog import training_pixels
from core.ml.checkpoint import load_model
from core.ml.device import resolve_device
from core.ml.inference import inference_options, predict_probabilities, prediction_summary
from core.versions import VersionInfo, get_version
from core.workspace import Workspace
from db.models import Image, Prediction


def load_version_model(ws: Workspace, version: VersionInfo, device: str = "auto"):
    """(model in eval mode, meta, device) of a version's checkpoint."""
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
    first: Sequence[int] = (),
    on_first_done: Callable[[int], None] | None = None,
) -> dict:
    """Run a version over workspace images; store probability PNGs and summaries.

    first: images to predict before all others (Update model: the corrected images and the
    next ones of the worklist); on_first_done(n) is called once those n are stored.
    """
    version = get_version(ws, version_ref)
    model, meta, dev = load_version_model(ws, version, device)
    options = inference_options(meta.config)  # the recipe's TTA and post-processing
    with ws.sessions() as s:
        ids = list(image_ids) if image_ids is not None else list(s.scalars(select(Image.id)))
    known = set(ids)
    head = [i for i in dict.fromkeys(first) if i in known]
    in_head = set(head)
    rest = [i for i in ids if i not in in_head]
    batches = [head[i : i + batch_size] for i in range(0, len(head), batch_size)]
    batches += [rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]
    done = 0
    for chunk in batches:
        if should_stop and should_stop():
            raise Cancelled()
        images = [training_pixels(ws, i) for i in chunk]
        probs = predict_probabilities(
            model, images, meta.size, dev, batch_size, meta.normalisation, **options
        )
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
        if on_first_done is not None and head and done == len(head):
            on_first_done(done)
        if progress:
            progress(done / max(len(ids), 1), f"predicted {done}/{len(ids)} images")
    return {"model_version": version.id, "predicted": done}


def worklist_head(ws: Workspace, version_id: int, n: int) -> list[int]:
    """The first n images of the review worklist in its default order (lowest Dice first)."""
    from core.review.rows_cache import cached_review_rows
    from core.review.worklist import ORDERS, order_rows

    # Through the page's on-disk cache: the job leaves the Review page's scores ready.
    rows = order_rows(cached_review_rows(ws, version_id), next(iter(ORDERS)))
    return [r.image_id for r in rows[:n]]


def run_prediction_job(ws: Workspace, job_id: int, settings: dict, reporter) -> dict:
    """Predict, then compute Grad-CAM for the first page of the review worklist, so the
    reader's first heatmaps are already cached when the Review page opens."""
    from core.review.explain import REVIEW_FIRST_PAGE, precompute_heatmaps

    result = predict_workspace(
        ws,
        settings.get("model", "active"),
        settings.get("image_ids"),
        settings.get("device", "auto"),
        progress=reporter.set_progress,
        should_stop=reporter.should_stop,
    )
    version_id = result["model_version"]
    head = worklist_head(ws, version_id, REVIEW_FIRST_PAGE)
    reporter.on_log(f"computing Grad-CAM for the first {len(head)} images of the worklist")
    result["gradcam_precomputed"] = precompute_heatmaps(
        ws, version_id, head, 0.5, reporter.should_stop
    )
    return result
