"""Workspace <-> files: LabelMe sidecars on import; LabelMe JSON, PNG masks and COCO on export.

Exported names are the workspace's display names (IMG-000042), never source file names, and
reader folders use a filesystem-safe form of the reader's name.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from annotations.coco import to_coco
from annotations.labelme_io import LabelFile, LabelFileError, parse_labelme, write_labelme
from annotations.rasterise import rasterise
from annotations.shapes import shape_from_dict, shape_to_dict
from core.annotating import latest_revision, save_revision
from core.catalog import display_image
from core.readers import ensure_label, get_or_create_reader
from core.store import atomic_write_bytes, encode_png
from core.workspace import Workspace
from db.models import AnnotationRevision, Image, Reader

IMPORT_READER = "import"
FORMATS = ("labelme", "masks", "coco", "all")


def import_labelme_sidecar(ws: Workspace, image_id: int, data: bytes, created: bool) -> int:
    """Store a LabelMe file's shapes as a revision of reader "import". Returns 1 if stored.

    Re-importing the same file adds nothing (the newest import revision already equals it).
    Raises ValueError naming the problem when the file is malformed or does not fit the image.
    """
    with ws.sessions() as s:
        image = s.get(Image, image_id)
        size = (image.width, image.height)
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"LabelMe JSON is malformed ({e})") from e
    try:
        label_file = parse_labelme(raw, source="LabelMe JSON", image_size=size)
    except LabelFileError as e:
        raise ValueError(str(e)) from e
    shapes = [shape_to_dict(sh) for sh in label_file.shapes]
    reader = get_or_create_reader(ws, IMPORT_READER, role="annotator")
    previous = latest_revision(ws, image_id, reader.name)
    if previous is not None and previous.shapes == shapes:
        return 0
    for label in {d["label"] for d in shapes}:
        ensure_label(ws, label)
    save_revision(
        ws,
        image_id,
        reader.name,
        shapes,
        based_on=previous.revision if previous else None,
        tool="labelme-import",
        source="import",
    )
    return 1


@dataclass(frozen=True)
class ExportItem:
    image_id: int
    display_name: str
    width: int
    height: int
    reader: str
    shapes: list


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "reader"


def export_items(
    ws: Workspace, reader: str | None = None, image_ids: list[int] | None = None
) -> list[ExportItem]:
    """Newest revision per (image, reader), or only `reader`'s."""
    with ws.sessions() as s:
        newest = select(func.max(AnnotationRevision.id).label("rid")).group_by(
            AnnotationRevision.image_id, AnnotationRevision.reader_id
        )
        if reader is not None:
            rd = s.scalar(select(Reader).where(Reader.name == reader))
            if rd is None:
                raise ValueError(f"unknown reader {reader!r}")
            newest = newest.where(AnnotationRevision.reader_id == rd.id)
        if image_ids is not None:
            newest = newest.where(AnnotationRevision.image_id.in_(image_ids))
        sub = newest.subquery()
        rows = s.execute(
            select(AnnotationRevision, Image.display_name, Reader.name)
            .join(sub, sub.c.rid == AnnotationRevision.id)
            .join(Image, Image.id == AnnotationRevision.image_id)
            .join(Reader, Reader.id == AnnotationRevision.reader_id)
            .order_by(AnnotationRevision.image_id, Reader.name)
        ).all()
        return [
            ExportItem(
                rev.image_id, name, rev.image_width, rev.image_height, rd_name, list(rev.shapes)
            )
            for rev, name, rd_name in rows
        ]


def export_workspace(
    ws: Workspace,
    fmt: str,
    out: str | Path,
    reader: str | None = None,
    image_data: bool = False,
    zip_output: bool = False,
    image_ids: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write images + LabelMe JSON / PNG masks / COCO under `out` (or into a .zip at `out`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if zip_output:
        with tempfile.TemporaryDirectory(prefix="pneumolab-export-") as tmp:
            summary = export_workspace(ws, fmt, tmp, reader, image_data, False, image_ids, progress)
            out.parent.mkdir(parents=True, exist_ok=True)
            _zip_folder(Path(tmp), out)
        return {**summary, "out": str(out)}

    items = export_items(ws, reader, image_ids)
    out.mkdir(parents=True, exist_ok=True)
    flat = reader is not None  # one reader: no per-reader folders
    want = {"labelme", "masks", "coco"} if fmt == "all" else {fmt}
    written_images: set[int] = set()
    coco_entries: dict[str, list] = {}
    n_json = n_masks = 0
    for i, item in enumerate(items):
        sub = "" if flat else _safe(item.reader)
        image_name = f"{item.display_name}.png"
        image_bytes = None
        if item.image_id not in written_images and want & {"labelme", "coco"}:
            image_bytes = encode_png(display_image(ws, item.image_id, max_side=None), 3)
            atomic_write_bytes(out / "images" / image_name, image_bytes)
            written_images.add(item.image_id)
        shapes = tuple(shape_from_dict(d) for d in item.shapes)
        if "labelme" in want:
            folder = out / "labelme" / sub
            rel_image = Path("..", *([".."] if sub else []), "images", image_name).as_posix()
            if image_data and image_bytes is None:
                image_bytes = (out / "images" / image_name).read_bytes()
            lf = LabelFile(
                version="5.5.0",
                flags={},
                shapes=shapes,
                image_path=rel_image,
                image_data=None,
                image_height=item.height,
                image_width=item.width,
            )
            write_labelme(
                folder / f"{item.display_name}.json",
                lf,
                include_image_data=image_data,
                image_bytes=image_bytes,
            )
            n_json += 1
        if "masks" in want:
            for label, mask in rasterise(shapes, (item.width, item.height)).items():
                png = encode_png(mask.astype(np.uint8) * 255, 3)
                atomic_write_bytes(
                    out / "masks" / sub / f"{item.display_name}_{_safe(label)}.png", png
                )
                n_masks += 1
        if "coco" in want:
            coco_entries.setdefault(item.reader, []).append(
                (item.image_id, image_name, item.width, item.height, shapes)
            )
        if progress:
            progress(i + 1, len(items))
    for rd, entries in coco_entries.items():
        name = "annotations.json" if flat else f"{_safe(rd)}.json"
        atomic_write_bytes(out / "coco" / name, json.dumps(to_coco(entries)).encode())
    return {
        "format": fmt,
        "out": str(out),
        "images": len(written_images)
        if want & {"labelme", "coco"}
        else len({it.image_id for it in items}),
        "labelme_files": n_json,
        "masks": n_masks,
        "coco_files": len(coco_entries),
        "readers": sorted({it.reader for it in items}),
    }


def _zip_folder(folder: Path, target: Path) -> None:
    tmp = target.with_suffix(target.suffix + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=3) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    shutil.move(tmp, target)


__all__ = ["export_workspace", "import_labelme_sidecar", "LabelFileError"]
