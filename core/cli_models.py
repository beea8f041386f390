"""CLI commands for models: train, evaluate, predict, models, activate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.workspace import Workspace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


class BadInput(Exception):
    pass


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", default="lung", help="label class to segment (default lung)")
    p.add_argument("--arch", default="unet", help="unet | deeplabv3 | deeplabv3plus")
    p.add_argument("--encoder", default="resnet34", help="resnet18 | resnet34 | resnet50")
    p.add_argument("--size", type=int, default=256, help="square training size in pixels")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--optimizer", default="adam", help="adam | adamw")
    p.add_argument("--loss", default="bce_iou", help="bce | dice | bce_iou | hybrid")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--from-version", type=int, help="fine-tune from this model version")
    p.add_argument("--reader", help="use this reader's labels (default: newest of any reader)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder-weights", help="local file with pretrained encoder weights")
    p.add_argument("--patience", type=int, default=10, help="early stopping patience (epochs)")
    p.add_argument("--activate", default="if_better", help="never | always | if_better")
    p.add_argument("--no-augment", action="store_true")


def cmd_train(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.progress import TextProgress
    from core.training_service import TrainRequest, train

    if not Path(args.encoder_weights).is_file() if args.encoder_weights else False:
        raise BadInput(f"encoder weights file {args.encoder_weights} does not exist")
    req = TrainRequest(
        label=args.label,
        arch=args.arch,
        encoder=args.encoder,
        size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        loss=args.loss,
        device=args.device,
        from_version=args.from_version,
        reader=args.reader,
        val_fraction=args.val_fraction,
        seed=args.seed,
        encoder_weights=args.encoder_weights,
        early_stopping_patience=args.patience,
        activate=args.activate,
        augment=not args.no_augment,
        created_by="cli",
    )
    try:
        version = train(ws, req, TextProgress())
    except (ValueError, LookupError, FileNotFoundError) as e:
        raise BadInput(str(e)) from e
    return {
        "model_version": version.id,
        "val_dice": version.metrics.get("dice"),
        "val_iou": version.metrics.get("iou"),
        "pixel_accuracy": version.metrics.get("pixel_accuracy"),
        "best_epoch": version.metrics.get("best_epoch"),
        "n_train": version.data_snapshot["n_train"],
        "n_val": version.data_snapshot["n_val"],
        "device": version.device,
        "duration_s": round(version.duration_s, 1),
        "active": version.is_active,
    }


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="active", help="version id or 'active'")
    p.add_argument("--labelme", required=True, help="folder of images with LabelMe JSON beside")
    p.add_argument("--label", default=None, help="label to evaluate (default: the model's)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--device", default="auto")


def _labelme_pairs(folder: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for js in sorted(folder.rglob("*.json")):
        image = None
        try:
            declared = json.loads(js.read_text()).get("imagePath")
        except (OSError, ValueError, AttributeError):
            declared = None
        if declared:
            candidate = (js.parent / declared).resolve()
            if candidate.is_file():
                image = candidate
        if image is None:
            image = next(
                (js.with_suffix(s) for s in IMAGE_SUFFIXES if js.with_suffix(s).is_file()), None
            )
        if image is not None:
            pairs.append((image, js))
    return pairs


def cmd_evaluate(ws: Workspace, args: argparse.Namespace) -> dict:
    from annotations.labelme_io import LabelFileError, read_labelme
    from annotations.rasterise import label_mask
    from core.imaging import ImageRejected, default_window, load_image_file, render_display
    from core.inference import predict_probability
    from core.metrics import segmentation_metrics
    from core.registry import get_version
    from core.training_service import load_version_model

    folder = Path(args.labelme)
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder of images with LabelMe JSON")
    try:
        version = get_version(ws, args.model)
    except LookupError as e:
        raise BadInput(str(e)) from e
    label = args.label or version.label
    pairs = _labelme_pairs(folder)
    if not pairs:
        raise BadInput(f"no LabelMe JSON with its image found under {folder}")
    model, meta, dev = load_version_model(ws, version, args.device)
    preds, truths, skipped = [], [], []
    for image_path, js in pairs:
        try:
            loaded = load_image_file(image_path)
            lf = read_labelme(js, image_size=(loaded.meta.width, loaded.meta.height))
        except (ImageRejected, LabelFileError, ValueError) as e:
            skipped.append({"path": str(js), "reason": str(e)})
            continue
        m = loaded.meta
        window = default_window(
            loaded.pixels, m.window_center, m.window_width, m.value_min, m.value_max
        )
        image = render_display(loaded.pixels, window).astype(np.float32) / 255.0
        prob = predict_probability(model, image, meta.size, dev, meta.normalisation)
        preds.append(prob >= args.threshold)
        truths.append(label_mask(lf.shapes, (m.width, m.height), label))
    result = segmentation_metrics(preds, truths)
    return {
        "model_version": version.id,
        "label": label,
        "n_images": len(preds),
        **result,
        "skipped": skipped,
    }


def add_predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="image files or folders")
    p.add_argument("--model", default="active", help="version id or 'active'")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--device", default="auto")


def cmd_predict(ws: Workspace, args: argparse.Namespace) -> dict:
    import cv2

    from core.imaging import ImageRejected, default_window, load_image, render_display
    from core.inference import predict_probability, prediction_summary
    from core.registry import get_version
    from core.sources import collect_sources
    from core.training_service import load_version_model

    try:
        version = get_version(ws, args.model)
    except LookupError as e:
        raise BadInput(str(e)) from e
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, meta, dev = load_version_model(ws, version, args.device)
    written, refused = [], []
    for n, src in enumerate(collect_sources(args.paths), start=1):
        try:
            loaded = load_image(src.read(), src.name)
        except (ImageRejected, ValueError, OSError) as e:
            refused.append({"path": src.name, "reason": str(e)})
            continue
        m = loaded.meta
        window = default_window(
            loaded.pixels, m.window_center, m.window_width, m.value_min, m.value_max
        )
        image = render_display(loaded.pixels, window).astype(np.float32) / 255.0
        prob = predict_probability(model, image, meta.size, dev, meta.normalisation)
        summary = prediction_summary(prob, args.threshold)
        # Output names are sequence numbers: source names may identify a patient.
        stem = f"pred-{n:05d}"
        cv2.imwrite(str(out / f"{stem}_prob.png"), np.round(prob * 255).astype(np.uint8))
        cv2.imwrite(str(out / f"{stem}_mask.png"), (prob >= args.threshold).astype(np.uint8) * 255)
        (out / f"{stem}_boxes.json").write_text(
            json.dumps(
                {
                    "model_version": version.id,
                    "width": m.width,
                    "height": m.height,
                    "image_score": summary.image_score,
                    "area_fraction": summary.area_fraction,
                    "uncertainty": summary.mean_entropy,
                    "boxes": [b.__dict__ if hasattr(b, "__dict__") else b for b in summary.boxes],
                },
                default=float,
            )
        )
        written.append({"input": src.name, "output": stem})
    (out / "index.json").write_text(json.dumps(written))
    return {
        "model_version": version.id,
        "predicted": len(written),
        "out": str(out),
        "refused": refused,
    }


def cmd_models(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.registry import list_versions

    return {"models": [v.summary() for v in list_versions(ws)]}


def add_activate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", type=int, help="model version id to make active")


def cmd_activate(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.registry import activate

    try:
        return {"active": activate(ws, args.version).id}
    except LookupError as e:
        raise BadInput(str(e)) from e
