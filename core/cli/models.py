"""CLI commands for models: train, compare, evaluate, predict, models, activate."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from core.vocab import IMAGE_SUFFIXES
from core.workspace import Workspace


class BadInput(Exception):
    pass


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", default="lung", help="label class to segment (default lung)")
    p.add_argument(
        "--arch", help="unet | deeplabv3 | deeplabv3plus (default: unet, or the parent's)"
    )
    p.add_argument(
        "--encoder", help="resnet18 | resnet34 | resnet50 (default: resnet34, or the parent's)"
    )
    p.add_argument(
        "--size", type=int, help="square training size in pixels (default: 256, or the parent's)"
    )
    p.add_argument(
        "--recipe",
        help="quick | best: a measured recipe sets schedule, augmentation, test-time "
        "augmentation and the label's post-processing (--arch/--encoder/--size still apply; "
        "--epochs, --lr, --batch-size, --optimizer, --loss, --val-fraction are the recipe's)",
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--optimizer", default="adam", help="adam | adamw")
    p.add_argument("--loss", default="bce_iou", help="bce | dice | bce_iou | hybrid")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    # Text, not type=int: core.versions checks ids, so a bad one is refused as a JSON line.
    p.add_argument("--from-version", help="fine-tune from this model version (id or 'active')")
    p.add_argument(
        "--reader",
        help="use this reader's labels, or 'consensus' (default: newest of any reader)",
    )
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder-weights", help="local file with pretrained encoder weights")
    p.add_argument("--patience", type=int, default=10, help="early stopping patience (epochs)")
    p.add_argument("--activate", default="if_better", help="never | always | if_better")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument(
        "--include-model-labels",
        action="store_true",
        help="also learn from accepted or uncorrected predictions (model output, off by default)",
    )


def _train_request(args: argparse.Namespace, **fields):
    """A TrainRequest of the settings train and compare share, plus `fields`."""
    from core.tasks.submit import TrainRequest

    return TrainRequest(
        label=args.label,
        encoder=args.encoder,
        size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        loss=args.loss,
        device=args.device,
        reader=args.reader,
        val_fraction=args.val_fraction,
        seed=args.seed,
        augment=not args.no_augment,
        include_model_labels=args.include_model_labels,
        created_by=getattr(args, "actor", None) or "cli",
        **fields,
    )


def cmd_train(ws: Workspace, args: argparse.Namespace) -> dict | None:
    from core.ml.progress import TextProgress
    from core.tasks.train import train

    if args.encoder_weights and not Path(args.encoder_weights).is_file():
        raise BadInput(f"encoder weights file {args.encoder_weights} does not exist")
    from_version = None
    if args.from_version is not None:
        from_version = _load_version_info(ws, args.from_version).id
    req = _train_request(
        args,
        arch=args.arch,
        from_version=from_version,
        encoder_weights=args.encoder_weights,
        early_stopping_patience=args.patience,
        activate=args.activate,
        recipe=args.recipe,
    )
    try:
        version = train(ws, req, TextProgress())
    except (ValueError, LookupError, FileNotFoundError) as e:
        raise BadInput(str(e)) from e
    if version is None:  # not rank 0 of a torchrun launch
        return None
    from core.accounts import audit

    audit(ws, req.created_by, "train", f"model version {version.id}", {"kind": "train"})
    return {
        "model_version": version.id,
        "val_dice": version.metrics.get("dice"),
        "val_iou": version.metrics.get("iou"),
        "pixel_accuracy": version.metrics.get("pixel_accuracy"),
        "best_epoch": version.metrics.get("best_epoch"),
        "n_train": version.data_snapshot["n_train"],
        "n_val": version.data_snapshot["n_val"],
        "device": version.device,
        "precision": version.settings.get("precision"),
        "duration_s": round(version.duration_s, 1),
        "active": version.is_active,
    }


def add_compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--arch",
        default="unet,deeplabv3,segnet",
        help="comma-separated architectures (default unet,deeplabv3,segnet)",
    )
    p.add_argument("--label", default="lung", help="label class to segment (default lung)")
    p.add_argument(
        "--encoder",
        default="resnet34",
        help="ResNet of the smp architectures (SegNet has its own VGG-16-bn encoder)",
    )
    p.add_argument("--size", type=int, default=256, help="square training size (default 256)")
    p.add_argument("--epochs", type=int, default=20, help="epochs for each architecture")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--optimizer", default="adam", help="adam | adamw")
    p.add_argument("--loss", default="bce_iou", help="bce | dice | bce_iou | hybrid")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--reader", help="use this reader's labels, or 'consensus'")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--include-model-labels", action="store_true")


def cmd_compare(ws: Workspace, args: argparse.Namespace) -> dict:
    """Train each architecture on the same patient-wise split with the same budget; one
    version each, none activated."""
    from core.ml.progress import TextProgress
    from core.tasks.compare import compare

    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    req = _train_request(args, activate="never")
    try:
        report = compare(ws, archs, req, TextProgress())
    except (ValueError, LookupError, FileNotFoundError) as e:
        raise BadInput(str(e)) from e
    from core.accounts import audit

    audit(ws, req.created_by, "train", "comparison", {"kind": "compare", "archs": archs})
    return report


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="active", help="version id or 'active'")
    p.add_argument("--labelme", required=True, help="folder of images with LabelMe JSON beside")
    p.add_argument("--label", default=None, help="label to evaluate (default: the model's)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--device", default="auto")


def _inside(folder: Path, js: Path, declared: str) -> Path | None:
    """The file a LabelMe imagePath names, if it lies under `folder`; else None.

    The path is normalised without following links and that normalised path is the one
    opened, so a `..` can neither climb out of the folder nor out through a linked directory.
    Links the folder itself holds are followed when opened, like the folder walk follows them
    (the evaluation folder may link to images kept elsewhere).
    """
    root = Path(os.path.normpath(folder.absolute()))
    candidate = Path(os.path.normpath(js.parent.absolute() / declared))
    return candidate if candidate.is_relative_to(root) else None


def _labelme_pairs(folder: Path) -> tuple[list[tuple[Path, Path]], list[dict]]:
    """(image, JSON) pairs under `folder`, and the JSON files refused with the reason."""
    pairs, refused = [], []
    for js in sorted(folder.rglob("*.json")):
        image = None
        try:
            declared = json.loads(js.read_text()).get("imagePath")
        except (OSError, ValueError, AttributeError):
            declared = None
        if declared and isinstance(declared, str):
            candidate = _inside(folder, js, declared.replace("\\", "/"))
            if candidate is None:
                refused.append(
                    {
                        "path": str(js),
                        "reason": f"its imagePath points outside {folder}; only files under "
                        "the folder given are read",
                    }
                )
                continue
            if candidate.is_file():
                image = candidate
        if image is None:
            image = next(
                (js.with_suffix(s) for s in sorted(IMAGE_SUFFIXES) if js.with_suffix(s).is_file()),
                None,
            )
        if image is not None:
            pairs.append((image, js))
    return pairs, refused


def _read_labelme_shapes(path: Path, size: tuple[int, int]) -> list:
    """Validated shapes of a LabelMe file for an image of `size` (width, height), read with
    the import's own limits (size, depth, duplicate keys, vertices, label length)."""
    from annotations.labelme_io import LabelFileError, loads_labelme
    from core.interchange.labelme_import import labelme_limits

    try:
        data = path.read_bytes()
        label_file = loads_labelme(data, source=path.name, image_size=size, limits=labelme_limits())
    except OSError as e:
        raise ValueError(f"not readable LabelMe JSON ({e.strerror or type(e).__name__})") from e
    except LabelFileError as e:
        raise ValueError(str(e)) from e
    return list(label_file.shapes)


def _model_input(loaded) -> np.ndarray:
    """A loaded file's pixels as the model sees them: default window, [0, 1] (as in
    core.labels.catalog.training_pixels for stored images)."""
    from core.imaging.display import model_input

    m = loaded.meta
    return model_input(loaded.pixels, m.window_center, m.window_width, m.value_min, m.value_max)


def _load_version_info(ws: Workspace, ref: str):
    """The model version `ref` names (an id or 'active'); BadInput saying why if none."""
    from core.versions import get_version

    try:
        return get_version(ws, ref)
    except LookupError as e:
        raise BadInput(str(e)) from e


def _load_version(ws: Workspace, ref: str, device: str):
    from core.tasks.predict import load_version_model

    version = _load_version_info(ws, ref)
    try:
        return (version, *load_version_model(ws, version, device))
    except (LookupError, ValueError, FileNotFoundError) as e:
        raise BadInput(str(e)) from e


def cmd_evaluate(ws: Workspace, args: argparse.Namespace) -> dict:
    from annotations.rasterise import label_mask
    from core.imaging import ImageRejected, load_image_file
    from core.ml.inference import inference_options, predict_probability
    from core.ml.metrics import above_threshold, dataset_scores

    folder = Path(args.labelme)
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder of images with LabelMe JSON")
    pairs, refused = _labelme_pairs(folder)
    if not pairs:
        raise BadInput(
            f"no LabelMe JSON with its image found under {folder}"
            + (f"; refused: {refused[:3]}" if refused else "")
        )
    version, model, meta, dev = _load_version(ws, args.model, args.device)
    label = args.label or version.label
    preds, truths, skipped = [], [], []
    for image_path, js in pairs:
        try:
            loaded = load_image_file(image_path)
            size = (loaded.meta.width, loaded.meta.height)
            shapes = _read_labelme_shapes(js, size)
        except (ImageRejected, ValueError, OSError) as e:
            skipped.append({"path": str(js), "reason": str(e)})
            continue
        if not any(sh.label == label for sh in shapes):
            skipped.append({"path": str(js), "reason": f"no {label!r} shapes"})
            continue
        image = _model_input(loaded)
        prob = predict_probability(
            model, image, meta.size, dev, meta.normalisation, **inference_options(meta.config)
        )
        preds.append(above_threshold(prob, args.threshold))
        truths.append(label_mask(shapes, size, label))
    if not preds:
        raise BadInput(f"no image under {folder} has usable {label!r} shapes: {skipped[:3]}")
    return {
        "model_version": version.id,
        "label": label,
        "n_images": len(preds),
        **dataset_scores(preds, truths),
        "skipped": skipped,
        "refused": refused,  # any makes the exit status 2, as for every refused input
    }


def add_predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="image files or folders")
    p.add_argument("--model", default="active", help="version id or 'active'")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--device", default="auto")


def cmd_predict(ws: Workspace, args: argparse.Namespace) -> dict:
    from dataclasses import asdict

    from annotations.files import atomic_write_bytes
    from core.imaging import ImageRejected, load_image
    from core.imaging.png import encode_png
    from core.ingest.sources import collect_sources
    from core.ml.inference import inference_options, predict_probability, prediction_summary
    from core.ml.metrics import above_threshold

    version, model, meta, dev = _load_version(ws, args.model, args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written, refused = [], []
    for n, src in enumerate(collect_sources(args.paths), start=1):
        try:
            loaded = load_image(src.read(), src.name)
        except (ImageRejected, ValueError, OSError) as e:
            refused.append({"input": n, "path": src.name, "reason": str(e)})
            continue
        prob = predict_probability(
            model,
            _model_input(loaded),
            meta.size,
            dev,
            meta.normalisation,
            **inference_options(meta.config),
        )
        summary = prediction_summary(prob, args.threshold)
        # Output names are the input's position: source names may identify a patient, so
        # none is written under out/ (the README says how to map back).
        stem = f"pred-{n:05d}"
        probability_u8 = np.round(prob * 255).astype(np.uint8)
        mask_u8 = above_threshold(prob, args.threshold).astype(np.uint8) * 255
        atomic_write_bytes(out / f"{stem}_prob.png", encode_png(probability_u8))
        atomic_write_bytes(out / f"{stem}_mask.png", encode_png(mask_u8))
        boxes = {
            "model_version": version.id,
            "width": loaded.meta.width,
            "height": loaded.meta.height,
            "threshold": args.threshold,
            "image_score": summary.image_score,
            "area_fraction": summary.area_fraction,
            "uncertainty": summary.mean_entropy,
            "boxes": [asdict(b) for b in summary.boxes],
        }
        atomic_write_bytes(out / f"{stem}_boxes.json", json.dumps(boxes).encode())
        written.append({"input": n, "output": stem})
    atomic_write_bytes(out / "index.json", json.dumps(written, indent=1).encode())
    return {
        "model_version": version.id,
        "predicted": len(written),
        "out": str(out),
        "refused": refused,
    }


def cmd_models(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.versions import list_versions

    return {"models": [v.summary() for v in list_versions(ws)]}


def add_activate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", help="model version id to make active")


def cmd_activate(ws: Workspace, args: argparse.Namespace) -> dict:
    from core.versions import activate

    version = _load_version_info(ws, args.version)
    try:
        return {"active": activate(ws, version.id, actor=args.actor).id}
    except LookupError as e:
        raise BadInput(str(e)) from e
