"""`pneumolab demo`: a local Gradio app that serves one model version.

Upload a PNG, JPEG or DICOM and see the prediction in red over the image, the Grad-CAM
heatmap, the regions' boxes with their confidence and the image-level score. Nothing is
stored: each upload is read into memory and its file deleted before the model runs, Gradio's
own files live in a private temporary folder removed on exit, and the workspace is only read
(the model's checkpoint). Nothing identifying is shown: no file name, no DICOM header text.

Gradio is an optional extra (`pip install -e '.[demo]'`); it is imported only by this command.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.cli.models import BadInput
from core.workspace import Workspace

INSTALL_HINT = "install the demo extra: pip install -e '.[demo]'"
BOX_COLUMNS = ["region", "x0", "y0", "x1", "y1", "confidence"]
# Everything Gradio would send out of the machine, switched off before it is imported.
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # usage telemetry and the version check
    "HF_HUB_OFFLINE": "1",  # no Hugging Face Hub look-ups (themes, Spaces)
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_MCP_SERVER": "False",
}


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="active", help="version id or 'active'")
    p.add_argument("--port", type=int, help="port to serve on (default: Gradio's, from 7860)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--threshold", type=float, default=0.5, help="positive pixel: prob > this")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")


@dataclass(frozen=True)
class DemoModel:
    """The one model version the demo serves, loaded once in eval mode."""

    version_id: int
    model: Any  # torch.nn.Module; typed loosely so this module imports no torch at load
    meta: Any  # core.ml.checkpoint.CheckpointMeta
    device: Any
    threshold: float


@dataclass(frozen=True)
class Analysis:
    overlay: np.ndarray  # RGB uint8, prediction red over the image
    heatmap: np.ndarray  # RGB uint8, Grad-CAM over the image
    regions: np.ndarray  # RGB uint8, the overlay with each region's box and confidence
    result: dict  # scores and boxes, JSON-ready


def analyse(served: DemoModel, data: bytes, suffix: str = "") -> Analysis:
    """Predict one uploaded file. Raises ImageRejected (with the reason) for a bad file.

    `suffix` is the upload's extension only (lets a DICOM without preamble be recognised);
    the name itself is never read, so it cannot leak into what is shown.
    """
    from core.imaging import load_image
    from core.imaging.display import model_input
    from core.ml.gradcam import SegmentationGradCam
    from core.ml.inference import inference_options, predict_probability, prediction_summary
    from core.ml.metrics import above_threshold
    from core.review.overlay import draw_boxes, heatmap_overlay, overlay

    loaded = load_image(data, f"upload{suffix}")
    m, meta = loaded.meta, served.meta
    # The rule the product trains and predicts with; grey is the same rendition in uint8.
    image = model_input(loaded.pixels, m.window_center, m.window_width, m.value_min, m.value_max)
    gray = np.rint(image * 255.0).astype(np.uint8)
    options = {**inference_options(meta.config), "threshold": served.threshold}
    prob = predict_probability(
        served.model, image, meta.size, served.device, meta.normalisation, **options
    )
    summary = prediction_summary(prob, served.threshold)
    predicted = overlay(gray, above_threshold(prob, served.threshold), None)
    with SegmentationGradCam(
        served.model, size=meta.size, normalisation=meta.normalisation, threshold=served.threshold
    ) as cam:
        heat = cam.heatmap(image)
    result = {
        "model_version": served.version_id,
        "threshold": served.threshold,
        "width": m.width,
        "height": m.height,
        "image_score": summary.image_score,
        "area_fraction": summary.area_fraction,
        "uncertainty": summary.mean_entropy,
        "boxes": [asdict(b) for b in summary.boxes],
    }
    return Analysis(
        overlay=predicted,
        heatmap=heatmap_overlay(gray, heat),
        regions=draw_boxes(predicted, summary.boxes),
        result=result,
    )


def _read_and_forget(path: str) -> bytes:
    """The upload's bytes; its file (and Gradio's folder for it) deleted at once."""
    upload = Path(path)
    try:
        return upload.read_bytes()
    finally:
        upload.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            upload.parent.rmdir()  # Gradio keeps each upload in a folder of its own


def build_app(served: DemoModel, cache_age_s: int = 60):
    """The Gradio Blocks app for `served` (gradio imported by the caller's check)."""
    import gradio as gr

    from core.imaging import ImageRejected

    empty = (None, None, None, None, [])

    def on_upload(path: str | None):
        if not path:
            return ("Upload a PNG, JPEG or DICOM chest X-ray.", *empty)
        suffix = Path(path).suffix.lower()[:8]
        data = _read_and_forget(path)
        try:
            out = analyse(served, data, suffix)
        except ImageRejected as e:
            return (f"**Not analysed:** {e}", *empty)
        r = out.result
        rows = [
            [i, b["x0"], b["y0"], b["x1"], b["y1"], round(b["confidence"], 4)]
            for i, b in enumerate(r["boxes"], start=1)
        ]
        message = (
            f"Image-level score **{r['image_score']:.3f}** · {len(rows)} region(s) above "
            f"{served.threshold:g} · {r['area_fraction']:.1%} of the image"
        )
        return message, out.overlay, out.heatmap, out.regions, r, rows

    # delete_cache: Gradio's rendered outputs older than cache_age_s are deleted as it runs,
    # and all of its files when the app closes (uploads are deleted as soon as they are read).
    with gr.Blocks(
        title="PneumoLab demo",
        analytics_enabled=False,
        delete_cache=(cache_age_s, cache_age_s),
    ) as app:
        gr.Markdown(
            f"## PneumoLab demo · model version {served.version_id}\n"
            "Upload a chest X-ray (PNG, JPEG or DICOM). Nothing is stored: the file is deleted "
            "as soon as it is read, and no name or header text is shown."
        )
        upload = gr.UploadButton("Upload an X-ray", type="filepath", file_count="single")
        message = gr.Markdown()
        with gr.Row():
            image_kw = {"type": "numpy", "format": "png", "interactive": False}
            predicted = gr.Image(label="Prediction (red)", **image_kw)
            heatmap = gr.Image(label="Grad-CAM heatmap", **image_kw)
            regions = gr.Image(label="Regions and confidence", **image_kw)
        with gr.Row():
            result = gr.JSON(label="Scores")
            boxes = gr.Dataframe(headers=BOX_COLUMNS, label="Regions", interactive=False)
        upload.upload(
            on_upload,
            inputs=upload,
            outputs=[message, predicted, heatmap, regions, result, boxes],
            api_name="predict",
        )
    return app


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def cmd_demo(ws: Workspace, args: argparse.Namespace) -> dict:
    if not 0.0 < args.threshold < 1.0:
        raise BadInput(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise BadInput(f"--port must be from 1 to 65535, got {args.port}")
    from core.ingest.sources import max_file_bytes
    from core.versions import get_version

    try:
        version = get_version(ws, args.model)
        max_bytes = max_file_bytes()  # the import's cap on one file holds for an upload too
    except (LookupError, ValueError) as e:
        raise BadInput(str(e)) from e
    # Gradio reads its folder and telemetry switches when imported: set them first. A private
    # folder, so that removing it on exit removes whatever Gradio wrote and nothing else.
    cache = Path(tempfile.mkdtemp(prefix="pneumolab-demo-"))
    os.environ.update({**OFFLINE_ENV, "GRADIO_TEMP_DIR": str(cache)})
    try:
        try:
            import gradio  # noqa: F401 - the optional extra
        except ImportError as e:
            raise BadInput(f"the demo needs Gradio; {INSTALL_HINT}") from e
        from core.tasks.predict import load_version_model

        try:
            model, meta, dev = load_version_model(ws, version, args.device)
        except (LookupError, ValueError, FileNotFoundError) as e:
            raise BadInput(str(e)) from e
        served = DemoModel(version.id, model, meta, dev, args.threshold)
        return _serve(build_app(served), args, version.id, max_bytes)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _serve(app, args: argparse.Namespace, version_id: int, max_bytes: int) -> dict:
    """Serve until Ctrl+C or SIGTERM; the one JSON line says what was served."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    url = None
    try:
        # Gradio prints to stdout; the CLI keeps stdout for its one JSON line.
        with contextlib.redirect_stdout(sys.stderr):
            options = {
                "server_name": args.host,
                "server_port": args.port,
                "share": False,
                "prevent_thread_lock": True,
                "quiet": True,
                "show_error": False,  # a failure shows Gradio's "Error", never a traceback
                "footer_links": ["api"],
                "run_history": False,  # no run records, not even in the browser
                "enable_monitoring": False,
                "mcp_server": False,
                "ssr_mode": False,
                "pwa": False,
                "max_file_size": max_bytes,
            }
            # The extra allows Gradio 5 and 6; 5 lacks some of these (and records no runs).
            accepted = inspect.signature(app.launch).parameters
            app.launch(**{k: v for k, v in options.items() if k in accepted})
            url = app.local_url
            sys.stderr.write(f"serving model version {version_id} at {url} (Ctrl+C stops)\n")
            sys.stderr.flush()
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.redirect_stdout(sys.stderr):
            app.close()
    return {"demo": "stopped", "model_version": version_id, "url": url}
