"""Import X-rays into a workspace: decode, de-identify, store once by content hash, record.

Every file is its own transaction: a refused file never stops the batch and never touches
what is already stored.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from core.accounts import audit, require
from core.imaging import ImageRejected, default_window, load_image, render_display
from core.imaging.deid import pseudonymise
from core.ingest.sources import (
    Refusal,
    Source,
    SourceError,
    bytes_source,
    collect,
    max_file_bytes,
    over_cap_reason,
)
from core.ingest.store import content_hash, quantise, write_image, write_thumbnail
from core.interchange.labelme_import import import_labelme_sidecar
from core.workspace import Workspace
from db.models import Image

ProgressFn = Callable[[int, int, str], None]

# A file value the database cannot store (PostgreSQL text holds no NUL character).
UNSTORABLE = "holds text the database cannot store (a NUL or other control character)"


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    annotations: int = 0
    # Found in a folder or archive but not imported (other file types, FIFOs, orphan JSON).
    skipped: list[Refusal] = field(default_factory=list)

    def summary(self) -> dict:
        """The CLI's JSON line; "skipped" only when something was (the line stays as it was)."""
        out = {
            "imported": len(self.imported),
            "duplicates": len(self.duplicates),
            "refused": [{"path": r.path, "reason": r.reason} for r in self.refused],
            "annotations": self.annotations,
        }
        if self.skipped:
            out["skipped"] = [{"path": r.path, "reason": r.reason} for r in self.skipped]
        return out


_OBJECT_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
MAX_REASON_CHARS = 400


def refusal_reason(e: BaseException) -> str:
    """A plain-language reason for a refused file, whatever was raised.

    Our own errors (ImageRejected, LabelFileError, SourceError) already say what and why;
    anything else is named by its kind, never by its text, which can quote file content,
    object reprs or paths.
    """
    if isinstance(e, RecursionError):
        return "content is nested too deeply to read"
    if isinstance(e, OverflowError):
        return "a number in the file is too large to use"
    if isinstance(e, MemoryError):
        return "file is too large to decode in memory"
    if isinstance(e, OSError):
        return f"cannot read the file ({e.strerror or type(e).__name__})"
    if isinstance(e, ValueError):  # ImageRejected, LabelFileError, SourceError and kin
        text = _OBJECT_REPR.sub("the file", str(e)) or type(e).__name__
        if len(text) > MAX_REASON_CHARS:
            text = text[: MAX_REASON_CHARS - 1] + "…"
        return text
    return f"cannot be read ({type(e).__name__})"


def import_sources(
    ws: Workspace,
    sources: Iterable[Source],
    progress: ProgressFn | None = None,
    imported_by: str | None = None,
) -> ImportReport:
    """Import each source; returns what was imported, found already stored, or refused.
    `imported_by` is the account importing: PermissionDenied (nothing imported) unless it
    may import. One audit row "import" with the counts (no file names)."""
    require(ws, imported_by, "import")
    sources = list(sources)
    report = ImportReport()
    for i, src in enumerate(sources):
        if progress:
            progress(i, len(sources), src.name)
        try:
            image_id, created = _import_one(ws, src, imported_by)
        except DataError:  # e.g. a NUL character, which PostgreSQL text cannot hold
            report.refused.append(Refusal(src.name, UNSTORABLE))
            continue
        except SQLAlchemyError:
            raise  # the workspace failed, not this file
        except Exception as e:  # noqa: BLE001 - one file never aborts the batch
            report.refused.append(Refusal(src.name, refusal_reason(e)))
            continue
        (report.imported if created else report.duplicates).append(image_id)
        if src.read_labelme is not None:
            try:
                report.annotations += import_labelme_sidecar(
                    ws,
                    image_id,
                    src.read_labelme(),
                    created,
                    source="its LabelMe JSON",
                    imported_by=imported_by,
                )
            except DataError:
                report.refused.append(Refusal(src.name, f"annotations not imported: {UNSTORABLE}"))
            except SQLAlchemyError:
                raise
            except Exception as e:  # noqa: BLE001 - one file never aborts the batch
                reason = refusal_reason(e)
                if isinstance(e, SourceError):  # the sidecar's own read (size cap, damage)
                    reason = f"its LabelMe JSON: {reason}"
                report.refused.append(Refusal(src.name, f"annotations not imported: {reason}"))
    if progress:
        progress(len(sources), len(sources), "")
    counts = {
        "imported": len(report.imported),
        "duplicates": len(report.duplicates),
        "refused": len(report.refused),
        "annotations": report.annotations,
    }
    n = len(sources)
    audit(ws, imported_by, "import", f"{n} file" + ("" if n == 1 else "s"), counts)
    return report


def import_paths(ws: Workspace, paths: Iterable[str | Path], **kw) -> ImportReport:
    """Import files, folders (recursive) and .zip archives; lists what was skipped there."""
    found = collect(paths)
    report = import_sources(ws, found.sources, **kw)
    report.skipped.extend(found.skipped)
    return report


def import_uploads(ws: Workspace, uploads: Iterable[tuple[str, bytes]], **kw) -> ImportReport:
    """Browser uploads: (file name, bytes). A .zip is unpacked; a .json beside an image of the
    same stem is taken as its LabelMe annotations."""
    uploads = list(uploads)
    jsons = {Path(n).stem: d for n, d in uploads if n.lower().endswith(".json")}
    sources: list[Source] = []
    skipped: list[Refusal] = []
    with tempfile.TemporaryDirectory(prefix="pneumolab-upload-") as tmp:
        for n, (name, data) in enumerate(uploads):
            lower = name.lower()
            if lower.endswith(".json"):
                continue
            if lower.endswith(".zip"):
                path = Path(tmp) / f"upload-{n}.zip"
                path.write_bytes(data)
                found = collect([path])
                # Messages name the upload, not the temporary copy.
                sources.extend(
                    replace(s, name=s.name.replace(str(path), name, 1)) for s in found.sources
                )
                skipped.extend(
                    Refusal(r.path.replace(str(path), name, 1), r.reason) for r in found.skipped
                )
                continue
            sources.append(bytes_source(name, data, jsons.get(Path(name).stem)))
        images = {Path(n).stem for n, _ in uploads if not n.lower().endswith((".json", ".zip"))}
        skipped.extend(
            Refusal(n, "LabelMe JSON without an image of the same name among the uploads")
            for n, _ in uploads
            if n.lower().endswith(".json") and Path(n).stem not in images
        )
        report = import_sources(ws, sources, **kw)
        report.skipped.extend(skipped)
        return report


def _import_one(ws: Workspace, src: Source, imported_by: str | None) -> tuple[int, bool]:
    if src.size > max_file_bytes():
        raise ImageRejected(over_cap_reason(src.size))
    data = src.read()  # sources raise SourceError with the reason; import_sources reports it
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
