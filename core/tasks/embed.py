"""The "embed" job kind: a model version's pooled encoder features of every workspace image,
projected to 2-D with PCA and t-SNE, stored once per version for the feature-space view
(core.review.features reads them)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from sqlalchemy import select

from annotations.files import atomic_open
from core.errors import Cancelled
from core.labels.catalog import training_pixels
from core.ml.embed import pooled_features
from core.review.features import embedding_path
from core.tasks.predict import load_version_model
from core.versions import get_version
from core.workspace import Workspace
from db.models import Image

TSNE_PERPLEXITY = 30.0


def project(features: np.ndarray) -> dict[str, np.ndarray]:
    """{"pca": (N, 2), "tsne": (N, 2)} of (N, C) features; columns a projection cannot fill
    (fewer than three images, or fewer dimensions than two) are zeros."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(features)
    out = {name: np.zeros((n, 2), np.float32) for name in ("pca", "tsne")}
    k = min(2, n, features.shape[1] if features.ndim == 2 else 0)
    if k >= 1 and n >= 2:
        out["pca"][:, :k] = PCA(n_components=k, svd_solver="full").fit_transform(features)
    if n >= 3:
        # t-SNE needs perplexity < n; small workspaces get a smaller neighbourhood.
        perplexity = min(TSNE_PERPLEXITY, float(n - 1) - 1e-3)
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0)
        out["tsne"][:] = tsne.fit_transform(features.astype(np.float32))
    return out


def embed_workspace(
    ws: Workspace,
    version_ref: int | str = "active",
    device: str = "auto",
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int = 8,
) -> dict:
    """Embed every workspace image with a version's encoder, project, store the result."""
    version = get_version(ws, version_ref)
    model, meta, dev = load_version_model(ws, version, device)
    with ws.sessions() as s:
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
    chunks = []
    for start in range(0, len(ids), batch_size):
        if should_stop and should_stop():
            raise Cancelled()
        images = [training_pixels(ws, i) for i in ids[start : start + batch_size]]
        chunks.append(
            pooled_features(model, images, meta.size, dev, batch_size, meta.normalisation)
        )
        done = min(start + batch_size, len(ids))
        if progress:
            progress(0.8 * done / max(len(ids), 1), f"embedded {done}/{len(ids)} images")
    features = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    if should_stop and should_stop():
        raise Cancelled()
    if progress:
        progress(0.85, "projecting with PCA and t-SNE")
    projections = project(features)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, image_ids=np.asarray(ids, np.int64), features=features, **projections
    )
    with atomic_open(embedding_path(ws, version.id)) as fh:
        fh.write(buffer.getvalue())
    if progress:
        progress(1.0, f"embedded {len(ids)} images")
    return {
        "model_version": version.id,
        "embedded": len(ids),
        "features": int(features.shape[1]) if features.ndim == 2 else 0,
    }


def run_embedding_job(ws: Workspace, job_id: int, settings: dict, reporter) -> dict:
    return embed_workspace(
        ws,
        settings.get("model", "active"),
        settings.get("device", "auto"),
        progress=reporter.set_progress,
        should_stop=reporter.should_stop,
    )
