"""Import X-rays into a workspace: decode, de-identify, store once by content hash, record.

Every file is its own transaction: a refused file never stops the batch and never touches
what is already stored.
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.imaging import ImageRejected, default_window, load_image, render_display
from core.imaging.deid import pseudonymise
from core.ingest.sources import MAX_FILE_BYTES, Refusal, Source, bytes_source, collect_sources
from core.ingest.store import content_hash, quantise, write_image, write_thumbnail
from core.interchange.labelme_import import import_labelme_sidecar
from core.workspace import Workspace
from db.models import Image

ProgressFn = Callable[[int, int, str], None]


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    annotations: int = 0

    def summary(self) -> dict:
        """The CLI's JSON line."""
        return {
            "imported": len(self.imported),
            "duplicates": len(self.duplicates),
            "refused": [{"path": r.path, "reason": r.reason} for r in self.refused],
            "annotations": self.annotations,
        }


def import_sources(
    ws: Workspace,
    sources: Iterable[Source],
    progress: ProgressFn | None = None,
    imported_by: str | None = None,
) -> ImportReport:
    """Import each source; returns what was imported, found already stored, or refused."""
    sources = list(sources)
    report = ImportReport()
    for i, src in enumerate(sources):
        if progress:
            progress(i, len(sources), src.name)
        try:
            image_id, created = _import_one(ws, src, imported_by)
        except (ImageRejected, ValueError, OSError) as e:
            report.refused.append(Refusal(src.name, str(e)))
            continue
        (report.imported if created else report.duplicates).append(image_id)
        if src.read_labelme is not None:
            try:
                report.annotations += import_labelme_sidecar(
                    ws, image_id, src.read_labelme(), created, source="its LabelMe JSON"
                )
            except (ValueError, OSError) as e:
                report.refused.append(Refusal(src.name, f"annotations not imported: {e}"))
    if progress:
        progress(len(sources), len(sources), "")
    return report


def import_paths(ws: Workspace, paths: Iterable[str | Path], **kw) -> ImportReport:
    return import_sources(ws, collect_sources(paths), **kw)


def import_uploads(ws: Workspace, uploads: Iterable[tuple[str, bytes]], **kw) -> ImportReport:
    """Browser uploads: (file name, bytes). A .zip is unpacked; a .json beside an image of the
    same stem is taken as its LabelMe annotations."""
    uploads = list(uploads)
    jsons = {Path(n).stem: d for n, d in uploads if n.lower().endswith(".json")}
    sources: list[Source] = []
    with tempfile.TemporaryDirectory(prefix="pneumolab-upload-") as tmp:
        for n, (name, data) in enumerate(uploads):
            lower = name.lower()
            if lower.endswith(".json"):
                continue
            if lower.endswith(".zip"):
                path = Path(tmp) / f"upload-{n}.zip"
                path.write_bytes(data)
                sources.extend(collect_sources([path]))
                continue
            sources.append(bytes_source(name, data, jsons.get(Path(name).stem)))
        return import_sources(ws, sources, **kw)


def _import_one(ws: Workspace, src: Source, imported_by: str | None) -> tuple[int, bool]:
    if src.size > MAX_FILE_BYTES:
        raise ImageRejected(f"file is {src.size} bytes, over the {MAX_FILE_BYTES} byte limit")
    try:
        data = src.read()
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ImageRejected(f"cannot read the file ({e})") from e
    loaded = load_image(data, src.name, ws.salt)
    meta = loaded.meta
    stored = quantise(loaded.pixels, meta.value_min, meta.value_max)
    digest = content_hash(stored)
    with ws.sessions() as s:
        existing = s.scalar(select(Image.id).where(Image.content_hash == digest))
    if existing is not None:
        return existing, False

    # Files first (atomic, named by hash), row second: a crash in between leaves an orphan
    # file that the next import of the same image reuses, never a row without pixels.
    rel = write_image(ws.store_dir, digest, stored)
    window = default_window(
        loaded.pixels, meta.window_center, meta.window_width, meta.value_min, meta.value_max
    )
    thumb = write_thumbnail(ws.store_dir, digest, render_display(loaded.pixels, window, 640))
    row = src.manifest_row
    patient_key = meta.patient_key or pseudonymise(row.get("patient_id"), ws.salt)
    view = meta.view or ((row.get("view") or "").strip()[:16] or None)
    spacing = meta.pixel_spacing
    image = Image(
        content_hash=digest,
        storage_path=rel,
        thumbnail_path=thumb,
        width=meta.width,
        height=meta.height,
        modality=meta.modality,
        source_format=meta.source_format,
        bits_stored=meta.bits_stored,
        photometric=meta.photometric,
        pixel_offset=stored.offset,
        pixel_scale=stored.scale,
        pixel_spacing_row=spacing[0] if spacing else None,
        pixel_spacing_col=spacing[1] if spacing else None,
        window_center=meta.window_center,
        window_width=meta.window_width,
        value_min=meta.value_min,
        value_max=meta.value_max,
        patient_key=patient_key,
        study_key=meta.study_key,
        series_key=meta.series_key,
        view=view,
        display_name="pending",
        imported_by=imported_by,
    )
    try:
        with ws.sessions.begin() as s:
            s.add(image)
            s.flush()
            image.display_name = f"IMG-{image.id:06d}"
    except IntegrityError:
        # Another import stored the same pixels a moment ago.
        with ws.sessions() as s:
            existing = s.scalar(select(Image.id).where(Image.content_hash == digest))
        if existing is None:
            raise
        return existing, False
    return image.id, True
