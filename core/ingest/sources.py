"""Turn what a user hands us (files, folders, .zip archives) into import sources.

A source knows how to read its bytes and carries its sidecars: a LabelMe JSON beside the
image, and a row of a CSV manifest (image, patient_id[, view]) found in an imported folder.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.vocab import IMAGE_SUFFIXES

MAX_FILE_BYTES = 512 * 1024**2
MANIFEST_COLUMNS = {"image", "patient_id"}


@dataclass(frozen=True)
class Source:
    name: str  # what messages call it: the path, or archive.zip!member
    read: Callable[[], bytes]
    size: int
    read_labelme: Callable[[], bytes] | None = None
    manifest_row: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    path: str
    reason: str


def _is_candidate(name: str) -> bool:
    suffix = PurePosixPath(name).suffix.lower()
    # DICOM files often have no extension at all.
    return suffix in IMAGE_SUFFIXES or suffix == ""


def _hidden(parts: Iterable[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _read_manifests(csv_files: Iterable[tuple[str, Callable[[], bytes]]]) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for _name, read in csv_files:
        try:
            text = read().decode("utf-8-sig")
            reader = csv.DictReader(io.StringIO(text))
            if not reader.fieldnames or not set(reader.fieldnames) >= MANIFEST_COLUMNS:
                continue
            for row in reader:
                key = (row.get("image") or "").strip()
                if key:
                    rows[PurePosixPath(key).name] = row
        except (UnicodeDecodeError, csv.Error):
            continue  # not a manifest we understand; images still import without it
    return rows


def _file_source(path: Path, manifest: dict[str, dict]) -> Source:
    sidecar = path.with_suffix(".json")
    return Source(
        name=str(path),
        read=path.read_bytes,
        size=path.stat().st_size,
        read_labelme=sidecar.read_bytes if sidecar.is_file() else None,
        manifest_row=manifest.get(path.name, {}),
    )


def _folder_sources(root: Path) -> list[Source]:
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root).parts)
    )
    manifest = _read_manifests((str(p), p.read_bytes) for p in files if p.suffix == ".csv")
    out = []
    for p in files:
        if p.suffix.lower() == ".zip":
            out.extend(_zip_sources(p))
        elif _is_candidate(p.name) and (p.suffix or _looks_like_dicom(p)):
            out.append(_file_source(p, manifest))
    return out


def _looks_like_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def _zip_sources(path: Path) -> list[Source]:
    try:
        archive = zipfile.ZipFile(path)
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as e:
        return [_refused_source(str(path), f"not a readable .zip archive ({e})")]
    names = {i.filename for i in infos}

    def reader(member: str) -> Callable[[], bytes]:
        def read() -> bytes:
            info = archive.getinfo(member)
            if info.file_size > MAX_FILE_BYTES:
                raise ValueError(f"archive member is {info.file_size} bytes, over the limit")
            with archive.open(info) as f:
                # Read one byte past the limit: a lying header cannot inflate past it.
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise ValueError("archive member inflates past the size limit")
            return data

        return read

    manifest = _read_manifests(
        (i.filename, reader(i.filename)) for i in infos if i.filename.endswith(".csv")
    )
    out = []
    for info in sorted(infos, key=lambda i: i.filename):
        member = PurePosixPath(info.filename)
        if _hidden(member.parts) or not _is_candidate(member.name):
            continue
        sidecar = str(member.with_suffix(".json"))
        out.append(
            Source(
                name=f"{path}!{info.filename}",
                read=reader(info.filename),
                size=info.file_size,
                read_labelme=reader(sidecar) if sidecar in names else None,
                manifest_row=manifest.get(member.name, {}),
            )
        )
    return out


def _refused_source(name: str, reason: str) -> Source:
    def fail() -> bytes:
        raise ValueError(reason)

    return Source(name=name, read=fail, size=0)


def collect_sources(paths: Iterable[str | Path]) -> list[Source]:
    """Every import source under `paths`. Missing paths become sources that refuse."""
    out: list[Source] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(_folder_sources(path))
        elif path.is_file() and path.suffix.lower() == ".zip":
            out.extend(_zip_sources(path))
        elif path.is_file():
            out.append(_file_source(path, {}))
        else:
            out.append(_refused_source(str(path), "no such file or folder"))
    return out


def bytes_source(name: str, data: bytes, labelme: bytes | None = None) -> Source:
    """A source for bytes already in memory (browser uploads)."""
    return Source(
        name=name,
        read=lambda: data,
        size=len(data),
        read_labelme=(lambda: labelme) if labelme is not None else None,
    )
