"""Export: LabelMe JSON, PNG masks and COCO from the workspace.

Exported names are the workspace's display names (IMG-000042), never source file names.
Layout of an export:

    labelme/<reader>/IMG-000042.png + .json  image beside its JSON (imagePath IMG-000042.png):
                                             the folder opens in labelme and imports back here
    masks/<reader>/IMG-000042_<label>.png    1-bit, white = label; one per label of the export
    coco/<reader>.json + coco/images/        file_name images/IMG-000042.png

Images are the display rendition (default window) at full size, lossless PNG. With one chosen
reader the <reader> level is left out and the COCO file is coco/annotations.json.

Each LabelMe file carries the reader's newest image-level finding as labelme `flags` (every
finding of core.vocab.FINDINGS, true for the one recorded) and the revision's provenance in
a top-level "pneumolab" object (reader, revision number, origin as core.labels.provenance
records it, model version, source, tool, saved at, finding), which labelme keeps as extra
data and our import ignores.

Names: a reader or label whose name is a plain ASCII file name keeps its filesystem-safe form
("reader", "lung", "Dr. Ada" -> "Dr._Ada"), as earlier exports named it. A name with
non-ASCII characters (or nothing, or too much, left in its safe form), or one whose safe form
another name of the export shares (also differing only in case, for case-insensitive disks),
gets 8 hex digits of its SHA-256 appended ("李医生" ->
"reader-853215ee", "left lung" -> "left_lung-8f253916" beside "left_lung"): no two names
ever share a file, and a name's form is the same in every export holding the same names.

The export is written into a hidden temporary folder (or .zip file) beside the target and
renamed into place when complete: a failed export leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from sqlalchemy import select

from annotations.coco import to_coco
from annotations.labelme_io import LabelFile, dumps_labelme
from annotations.rasterise import rasterise
from annotations.shapes import Shape, shape_from_dict
from core.accounts import audit, require
from core.imaging import Window, default_window, render_display
from core.imaging.png import encode_png
from core.ingest.store import read_pixels
from core.vocab import FINDINGS
from core.workspace import Workspace
from db import queries
from db.models import AnnotationRevision, Image, ImageFinding, Reader

FORMATS = ("labelme", "masks", "coco", "all")
LABELME_VERSION = "5.5.0"
# The top-level key of each LabelMe file that holds where its shapes came from.
PROVENANCE_KEY = "pneumolab"
# Longest reader or label part of a file name (file systems allow 255 bytes per name).
MAX_NAME_PART = 64


class ExportError(ValueError):
    """An export that could not be written (full disk, read-only folder, ...). The message
    says where, why and what to do; nothing of the export was left behind."""


@dataclass(frozen=True)
class ExportItem:
    """One reader's newest revision of one image, as exported."""

    image_id: int
    display_name: str
    width: int
    height: int
    reader: str
    shapes: tuple[Shape, ...]
    revision: int = 0
    source: str = "manual"
    tool: str = "manual"
    origin: str = "drawn"  # core.labels.provenance: drawn, imported, accepted, corrected, ...
    model_version_id: int | None = None
    created_at: datetime | None = None
    finding: str | None = None  # the reader's newest image-level finding, if any

    def flags(self) -> dict[str, bool]:
        """labelme `flags`: every finding name, true for the one this reader recorded."""
        return {name: name == self.finding for name in FINDINGS}

    def provenance(self) -> dict[str, Any]:
        """Where these shapes came from (the "pneumolab" key of the LabelMe file)."""
        return {
            "reader": self.reader,
            "revision": self.revision,
            "origin": self.origin,
            "model_version": self.model_version_id,
            "source": self.source,
            "tool": self.tool,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finding": self.finding,
        }


# --- names -------------------------------------------------------------------------------------

_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)


def _plain(name: str) -> str:
    """Runs of anything but A-Z a-z 0-9 . _ - become one "_"; no leading or trailing . or _."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")


def _hashed(name: str, fallback: str) -> str:
    """The plain form, shortened, plus 8 hex digits of the name's SHA-256."""
    short = _plain(name)[:MAX_NAME_PART].rstrip("._") or fallback
    return f"{short}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _own_form(name: str, fallback: str) -> str:
    """A name's form before collisions: its plain form when nothing was lost making it
    readable everywhere (ASCII, not empty, not too long, no Windows device name), else hashed."""
    plain = _plain(name)
    kept = (
        name.isascii()
        and 0 < len(plain) <= MAX_NAME_PART
        and plain.split(".")[0].upper() not in _WINDOWS_DEVICES
    )
    return plain if kept else _hashed(name, fallback)


def file_names(names: Iterable[str], fallback: str) -> dict[str, str]:
    """Each name's file-name form, unique among `names` even on a case-insensitive disk.

    See the module docstring for the rule. Raises ValueError when two names still meet (only
    a name typed to equal another's hashed form can do that), naming both.
    """
    names = sorted(set(names))
    forms = {n: _own_form(n, fallback) for n in names}
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(forms[n].casefold(), []).append(n)
    for group in groups.values():
        if len(group) > 1:
            exact = [n for n in group if forms[n] == n]
            keep = exact[0] if len(exact) == 1 else None  # "left_lung" beside "left lung"
            for n in group:
                if n != keep:
                    forms[n] = _hashed(n, fallback)
    seen: dict[str, str] = {}
    for n, form in forms.items():
        other = seen.setdefault(form.casefold(), n)
        if other != n:
            raise ValueError(
                f"{other!r} and {n!r} would share the file name {form!r}; rename one of them"
            )
    return forms


# --- what to export ----------------------------------------------------------------------------


def export_items(
    ws: Workspace, reader: str | None = None, image_ids: list[int] | None = None
) -> list[ExportItem]:
    """Newest revision per (image, reader), or only `reader`'s; ordered by image, reader."""
    with ws.sessions() as s:
        reader_id = None
        if reader is not None:
            rd = queries.reader_by_name(s, reader)
            if rd is None:
                names = ", ".join(s.scalars(select(Reader.name).order_by(Reader.name)))
                raise ValueError(f"unknown reader {reader!r}; readers: {names or 'none'}")
            reader_id = rd.id
        rows = queries.newest_per_reader(
            s, AnnotationRevision, image_ids=image_ids, reader_id=reader_id
        )
        findings = {
            (row.image_id, name): row.finding
            for row, name in queries.newest_per_reader(
                s, ImageFinding, image_ids=image_ids, reader_id=reader_id
            )
        }
        ids = sorted({rev.image_id for rev, _ in rows})
        names = dict(
            s.execute(
                select(Image.id, Image.display_name).where(queries.among(s, Image.id, ids))
            ).all()
        )
        rows.sort(key=lambda row: (row[0].image_id, row[1]))
        return [
            ExportItem(
                rev.image_id,
                names[rev.image_id],
                rev.image_width,
                rev.image_height,
                rd_name,
                tuple(shape_from_dict(d) for d in rev.shapes),
                revision=rev.revision,
                source=rev.source,
                tool=rev.tool,
                origin=rev.origin,
                model_version_id=rev.model_version_id,
                created_at=rev.created_at,
                finding=findings.get((rev.image_id, rd_name)),
            )
            for rev, rd_name in rows
        ]


@dataclass(frozen=True)
class _StoredImage:
    """Where an image's pixels are and how its default window is found (one query for all)."""

    storage_path: str
    offset: float
    scale: float
    window_center: float | None
    window_width: float | None
    value_min: float
    value_max: float


def _stored_images(ws: Workspace, ids: Iterable[int]) -> dict[int, _StoredImage]:
    cols = (
        Image.id,
        Image.storage_path,
        Image.pixel_offset,
        Image.pixel_scale,
        Image.window_center,
        Image.window_width,
        Image.value_min,
        Image.value_max,
    )
    with ws.sessions() as s:
        rows = s.execute(select(*cols).where(queries.among(s, Image.id, ids))).all()
    return {row[0]: _StoredImage(*row[1:]) for row in rows}


@dataclass(frozen=True)
class _ImageJob:
    """Everything one worker writes for one image: its copies, LabelMe files and masks."""

    image: _StoredImage
    image_name: str  # IMG-000042.png: the LabelMe files' imagePath
    image_paths: tuple[str, ...]  # relative paths of the image's copies
    labelme: tuple[tuple[str, ExportItem], ...]  # (JSON path, the reader's item)
    masks: tuple[tuple[ExportItem, tuple[tuple[str, str], ...]], ...]  # item, (label, path)s


@dataclass(frozen=True)
class _Plan:
    """Every file of an export, named before anything is written."""

    jobs: tuple[_ImageJob, ...]
    coco: tuple[tuple[str, tuple[ExportItem, ...]], ...]  # (COCO file path, its items)
    image_names: dict[int, str]  # image id -> file stem
    labels: tuple[str, ...]
    reader_folders: dict[str, str]
    label_parts: dict[str, str]

    def paths(self) -> Iterator[str]:
        for job in self.jobs:
            yield from job.image_paths
            yield from (path for path, _ in job.labelme)
            yield from (path for _, masks in job.masks for _, path in masks)
        yield from (path for path, _ in self.coco)


def _image_stems(items: list[ExportItem]) -> dict[int, str]:
    names = {it.image_id: it.display_name for it in items}
    forms = file_names(names.values(), "image")
    # Display names are unique by construction (IMG-<id>); should two ever match, the id
    # keeps their files apart rather than one overwriting the other.
    count = Counter(forms[n].casefold() for n in names.values())
    return {
        i: forms[n] if count[forms[n].casefold()] == 1 else f"{forms[n]}-{i}"
        for i, n in names.items()
    }


def _plan(ws: Workspace, items: list[ExportItem], want: frozenset[str], flat: bool) -> _Plan:
    labels = tuple(sorted({s.label for item in items for s in item.shapes}))
    folders = file_names({it.reader for it in items}, "reader")
    parts = file_names(labels, "label")
    stems = _image_stems(items)
    stored = _stored_images(ws, stems)

    def folder(kind: str, reader: str) -> str:
        return kind if flat else f"{kind}/{folders[reader]}"

    per_image: dict[int, list[ExportItem]] = {}
    for item in items:
        per_image.setdefault(item.image_id, []).append(item)
    jobs = []
    for image_id, group in per_image.items():
        stem = stems[image_id]
        copies = []
        if "coco" in want:
            copies.append(f"coco/images/{stem}.png")
        if "labelme" in want:
            copies.extend(f"{folder('labelme', it.reader)}/{stem}.png" for it in group)
        labelme = tuple(
            (f"{folder('labelme', it.reader)}/{stem}.json", it) for it in group if "labelme" in want
        )
        masks = tuple(
            (
                it,
                tuple(
                    (lb, f"{folder('masks', it.reader)}/{stem}_{parts[lb]}.png") for lb in labels
                ),
            )
            for it in group
            if "masks" in want
        )
        jobs.append(_ImageJob(stored[image_id], f"{stem}.png", tuple(copies), labelme, masks))
    coco: list[tuple[str, tuple[ExportItem, ...]]] = []
    if "coco" in want:
        by_reader: dict[str, list[ExportItem]] = {}
        for item in items:
            by_reader.setdefault(item.reader, []).append(item)
        for reader, group in by_reader.items():
            name = "annotations.json" if flat else f"{folders[reader]}.json"
            coco.append((f"coco/{name}", tuple(group)))
    plan = _Plan(tuple(jobs), tuple(coco), stems, labels, folders, parts)
    clash = [p for p, n in Counter(p.casefold() for p in plan.paths()).items() if n > 1]
    if clash:  # the names above make this impossible; never let one file overwrite another
        raise ValueError(f"export would write {clash[0]!r} twice; nothing was written")
    return plan


# --- writing -----------------------------------------------------------------------------------


class _Sink(Protocol):
    """Where an export's files go: a folder or a zip. Thread-safe."""

    def write(self, path: str, data: bytes) -> None: ...

    def copy(self, paths: tuple[str, ...], data: bytes) -> None: ...


class _FolderSink:
    """Files under a (temporary) folder, each fsynced so the folder is whole once renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders: set[Path] = {root}
        self._lock = threading.Lock()

    def _parent(self, path: Path) -> None:
        if path.parent not in self.folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self.folders.update(p for p in path.parents if self.root in (p, *p.parents))

    def write(self, path: str, data: bytes) -> None:
        target = self.root / path
        self._parent(target)
        with open(target, "xb") as f:  # "x": a file is never written twice
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def copy(self, paths: tuple[str, ...], data: bytes) -> None:
        """The same bytes at several paths: hard links to the first where the disk allows."""
        first, *others = paths
        self.write(first, data)
        for path in others:
            target = self.root / path
            self._parent(target)
            try:
                os.link(self.root / first, target)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                    raise
                self.write(path, data)  # no hard links on this file system

    def sync_folders(self) -> None:
        for folder in self.folders:
            _fsync_dir(folder)


class _ZipSink:
    """Entries of one zip file; PNGs stored as they are (deflating them again only costs
    time), JSON deflated. After a failed write every later one fails the same way, so the
    error reported is the disk's, not the zip module's complaint about a broken archive."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf
        self._lock = threading.Lock()
        self._failed: OSError | None = None

    def write(self, path: str, data: bytes) -> None:
        info = zipfile.ZipInfo(path, date_time=datetime.now().timetuple()[:6])
        info.compress_type = zipfile.ZIP_STORED if path.endswith(".png") else zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with self._lock:
            if self._failed is not None:
                raise OSError(self._failed.errno, self._failed.strerror)
            try:
                self.zf.writestr(info, data, compresslevel=6)
            except OSError as e:
                self._failed = e
                raise

    def copy(self, paths: tuple[str, ...], data: bytes) -> None:
        for path in paths:
            self.write(path, data)


def _fsync_dir(path: Path) -> None:
    """Make a folder's entries durable (POSIX; elsewhere the rename is what we have)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # an empty IEND chunk and its CRC


def _is_gray8_png(data: bytes) -> bool:
    """An 8-bit greyscale PNG (IHDR: bit depth 8, colour type 0)."""
    return (
        data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24:26] == b"\x08\x00"
    )


class _PixelsNotRead:
    """Stands in for an image's pixels before they are read: any use of it raises."""

    def __getattr__(self, name: str) -> Any:
        raise LookupError("pixels not read")

    def __getitem__(self, key: Any) -> Any:
        raise LookupError("pixels not read")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise LookupError("pixels not read")

    def __bool__(self) -> bool:
        raise LookupError("pixels not read")


def _default_window(store_dir: Path, image: _StoredImage) -> tuple[Window, np.ndarray | None]:
    """The image's default window, and its pixels when the window needed them.

    The window is core.imaging's default_window, asked first without the pixels: from the
    header or the value range it needs none, and only its histogram rule reads them.
    """
    args = (image.window_center, image.window_width, image.value_min, image.value_max)
    try:
        return default_window(_PixelsNotRead(), *args), None
    except Exception:  # the rule looked at the pixels: read them and ask again
        pixels = read_pixels(store_dir, image.storage_path, image.offset, image.scale)
        return default_window(pixels, *args), pixels


def _display_png(store_dir: Path, image: _StoredImage) -> bytes:
    """The display rendition under the default window at full size, as lossless PNG: the
    pixels catalog.display_image(max_side=None) shows (only its default window is needed, so
    the other presets' histogram is not computed).

    When the window maps every 8-bit value onto itself and the stored PNG is 8-bit grey with
    no rescale (every JPEG and 8-bit PNG source), the rendition is the stored image itself:
    the stored PNG holds exactly those pixels, so its bytes are used as they are, without
    decoding and encoding a megapixel again (the store encodes as encode_png below does).
    """
    window, pixels = _default_window(store_dir, image)
    if image.offset == 0 and image.scale == 1:
        # Windowing is per value, so the 256 values show what it does to every pixel.
        values = np.arange(256, dtype=np.float32)[None, :]
        if np.array_equal(render_display(values, window), values):
            stored = (store_dir / image.storage_path).read_bytes()
            if _is_gray8_png(stored):
                # Copied without decoding, so check it is whole: a stored file cut short
                # (a full disk, a copy interrupted) would otherwise be exported as it is.
                if not stored.endswith(_PNG_END):
                    raise OSError(errno.EIO, "the stored PNG is truncated")
                return stored
    if pixels is None:
        pixels = read_pixels(store_dir, image.storage_path, image.offset, image.scale)
    return encode_png(render_display(pixels, window), 1)


def _mask_png(mask: np.ndarray) -> bytes:
    """1-bit PNG (reads as 0/255 in OpenCV, bool in PIL): 5x faster to write than 8-bit."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_BILEVEL, 1]
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255, params)
    if not ok:
        raise OSError("PNG encoding of a mask failed")
    return buf.tobytes()


def _label_file(item: ExportItem, image_name: str) -> LabelFile:
    return LabelFile(
        version=LABELME_VERSION,
        flags=item.flags(),
        shapes=item.shapes,
        image_path=image_name,
        image_data=None,
        image_height=item.height,
        image_width=item.width,
        extra={PROVENANCE_KEY: item.provenance()},
    )


def _export_image(store_dir: Path, job: _ImageJob, sink: _Sink, image_data: bool) -> None:
    """Write one image, its readers' LabelMe files and masks.

    Runs in a worker thread: PNG decoding and encoding, fsync and file writes release the GIL.
    """
    png = b""
    if job.image_paths:
        try:
            png = _display_png(store_dir, job.image)
        except OSError as e:  # a reading error, not a writing one: say which image
            raise ExportError(
                f"{job.image_name}: its stored pixels cannot be read "
                f"({getattr(e, 'strerror', None) or type(e).__name__}); re-import that "
                "image, then export again. Nothing was left behind."
            ) from e
        sink.copy(job.image_paths, png)
    for path, item in job.labelme:
        label_file = _label_file(item, job.image_name)
        text = dumps_labelme(label_file, image_data, png if image_data else None)
        sink.write(path, text.encode("utf-8"))
    for item, masks in job.masks:
        drawn = rasterise(item.shapes, (item.width, item.height))
        empty = None
        for label, path in masks:
            mask = drawn.get(label)
            if mask is None:
                if empty is None:
                    empty = np.zeros((item.height, item.width), dtype=bool)
                mask = empty
            sink.write(path, _mask_png(mask))


def _write_coco(plan: _Plan, sink: _Sink) -> None:
    for path, group in plan.coco:
        entries = [
            (it.image_id, f"images/{plan.image_names[it.image_id]}.png", it.width, it.height,
             it.shapes)
            for it in group
        ]  # fmt: skip
        coco = to_coco(entries, categories=plan.labels)
        sink.write(path, json.dumps(coco).encode())


def _run(
    ws: Workspace,
    plan: _Plan,
    sink: _Sink,
    image_data: bool,
    progress: Callable[[int, int], None] | None,
    threads: int | None,
) -> None:
    workers = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
        futures = [
            pool.submit(_export_image, ws.store_dir, job, sink, image_data) for job in plan.jobs
        ]
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()
                if progress:
                    progress(done, len(futures))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    _write_coco(plan, sink)


# --- in one piece, or not at all -------------------------------------------------------------

_HINTS = {
    errno.ENOSPC: "The disk is full: free some space or export to another disk.",
    errno.EDQUOT: "The disk quota is used up: free some space or export to another disk.",
    errno.EFBIG: "A file size limit was reached: export to another disk, or raise the limit.",
    errno.EROFS: "That disk is read-only: choose a folder you can write to.",
    errno.EACCES: "That folder is not writable for you: choose a folder you can write to.",
    errno.EPERM: "That folder is not writable for you: choose a folder you can write to.",
    errno.ENOTDIR: "Part of that path is a file, not a folder: choose another path.",
    errno.ENAMETOOLONG: "The path is too long: choose a folder with a shorter path.",
}


def _write_error(e: OSError, target: Path) -> ExportError:
    reason = e.strerror or str(e)
    hint = _HINTS.get(e.errno, "Check the target folder and try again.")
    return ExportError(
        f"cannot write the export to {target}: {reason}. {hint} Nothing was left behind."
    )


def _make_parent(target: Path) -> None:
    """Create the folder `target` goes into; a file in the way is ENOTDIR, as for a deeper
    path (mkdir says "File exists" for the last component only)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), e.filename) from e


def _hidden_sibling(target: Path) -> Path:
    """A new name beside `target` for the export in progress (hidden, marked .part)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")


@contextmanager
def _folder_in_one_piece(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target`, renamed to `target` on success, removed on any
    failure. `target` must not exist yet or be an empty folder."""
    _make_parent(target)
    while True:
        tmp = _hidden_sibling(target)
        try:
            tmp.mkdir()  # not mkdtemp: the export gets the usual permissions, not 0700
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        try:
            os.replace(tmp, target)  # POSIX replaces an empty folder in one step
        except OSError:
            if not target.is_dir() or any(target.iterdir()):
                raise
            target.rmdir()  # Windows does not replace folders
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def _zip_in_one_piece(target: Path) -> Iterator[zipfile.ZipFile]:
    """A zip written to a temporary file beside `target` and renamed over it when complete."""
    _make_parent(target)
    tmp = _hidden_sibling(target)
    try:
        with open(tmp, "xb") as f:
            zf = zipfile.ZipFile(f, "w")
            try:
                yield zf
            except BaseException:
                with suppress(Exception):  # the file goes; keep the first error, not this one
                    zf.close()
                raise
            zf.close()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_target(out: Path, zip_output: bool) -> None:
    if zip_output:
        if out.is_dir():
            raise ValueError(f"{out} is a folder; give the path of the .zip file to write")
        return
    if out.is_file():
        raise ValueError(f"{out} is a file; give a folder to export into (or use --zip)")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(
            f"{out} already holds files; give a new or empty folder (an export is written in "
            "one piece, never mixed with older files)"
        )


def export_workspace(
    ws: Workspace,
    fmt: str,
    out: str | Path,
    reader: str | None = None,
    image_data: bool = False,
    zip_output: bool = False,
    image_ids: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
    *,
    actor: str | None = None,
) -> dict:
    """Write images + LabelMe JSON / PNG masks / COCO as the folder `out` (or the .zip `out`).

    Exports each reader's newest revision of every annotated image (or only `reader`'s).
    `out` is created in one piece: it must be a new or empty folder (a .zip is replaced).
    `progress(done, total)` counts images. Returns the summary the CLI prints, whose counts
    are the files written. Raises ValueError for a bad request and ExportError (a ValueError)
    when the disk refuses a write; then nothing of the export is left. `actor` is the account
    exporting: PermissionDenied (nothing written) unless it may export; an audit row "export"
    with the counts (not the target path, which a user names).
    """
    require(ws, actor, "export")
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    _check_target(out, zip_output)
    target = Path(os.path.abspath(out))  # "." and "x/.." have a parent and a name
    items = export_items(ws, reader, image_ids)
    want = frozenset({"labelme", "masks", "coco"} if fmt == "all" else {fmt})
    plan = _plan(ws, items, want, flat=reader is not None)
    try:
        if zip_output:
            with _zip_in_one_piece(target) as zf:
                _run(ws, plan, _ZipSink(zf), image_data, progress, threads)
        else:
            with _folder_in_one_piece(target) as tmp:
                sink = _FolderSink(tmp)
                _run(ws, plan, sink, image_data, progress, threads)
                sink.sync_folders()
    except OSError as e:
        raise _write_error(e, out) from e
    jobs = plan.jobs
    audit(
        ws,
        actor,
        "export",
        fmt,
        {"images": len(jobs), "reader": reader, "zip": zip_output, "image_data": image_data},
    )
    return {
        "format": fmt,
        "out": str(out),
        "images": len(jobs),
        "annotation_sets": len(items),
        "shapes": sum(len(it.shapes) for it in items),
        "labelme_files": sum(len(job.labelme) for job in jobs),
        "masks": sum(len(masks) for job in jobs for _, masks in job.masks),
        "coco_files": len(plan.coco),
        "files": sum(1 for _ in plan.paths()),
        "readers": sorted(plan.reader_folders),
        "reader_folders": {} if reader is not None else plan.reader_folders,
        "label_files": dict(plan.label_parts) if "masks" in want else {},
        "renamed": _renamed(plan, flat=reader is not None, masks="masks" in want),
    }


def _renamed(plan: _Plan, flat: bool, masks: bool) -> dict[str, str]:
    """Reader folders and mask label parts that are not the name itself (for the page)."""
    names = {} if flat else dict(plan.reader_folders)
    if masks:
        names.update(plan.label_parts)
    return {name: form for name, form in names.items() if form != name}


__all__ = [
    "FORMATS",
    "PROVENANCE_KEY",
    "ExportError",
    "ExportItem",
    "export_items",
    "export_workspace",
    "file_names",
]
