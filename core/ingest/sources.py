"""Turn what a user hands us (files, folders, .zip archives) into import sources.

A source knows how to read its bytes and carries its sidecars: a LabelMe JSON beside the
image, and a row of a CSV manifest (image, patient_id[, view]) found in an imported folder.
What a folder or archive holds that is not imported (other file types, a LabelMe JSON with
no image, a FIFO, a .zip nested too deep) is listed as skipped, with the reason.

Every read is bounded: a file or archive member over the size cap (PNEUMOLAB_MAX_FILE_MB) is
refused before it is read, from its size on disk or the archive's header, and a member whose
data inflates past the cap is stopped while it is read, whatever its header claims.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.vocab import IMAGE_SUFFIXES

MAX_FILE_MB_SETTING = "PNEUMOLAB_MAX_FILE_MB"
MAX_FILE_BYTES = 512 * 1024**2  # the default cap; max_file_bytes() is the one in force
MANIFEST_COLUMNS = {"image", "patient_id"}
# Images we recognise but do not import (labelme opens them; our store is PNG/JPEG/DICOM).
UNSUPPORTED_IMAGE_SUFFIXES = {
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WebP",
    ".gif": "GIF",
    ".jp2": "JPEG 2000",
    ".j2k": "JPEG 2000",
}
# What Python's zipfile decompresses; anything else (Deflate64, PPMd, ...) is refused unread.
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_CHUNK = 1024**2  # archive members are inflated 1 MiB at a time, so the cap stops a bomb early


class SourceError(ValueError):
    """A file or archive member that cannot be read; the message is plain and says why."""


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


@dataclass
class Collected:
    """What collect() found: sources to import, and entries skipped with the reason."""

    sources: list[Source] = field(default_factory=list)
    skipped: list[Refusal] = field(default_factory=list)

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append(Refusal(name, reason))


def max_file_bytes() -> int:
    """The size cap for one file or archive member: PNEUMOLAB_MAX_FILE_MB (default 512)."""
    raw = os.environ.get(MAX_FILE_MB_SETTING, "").strip()
    if not raw:
        return MAX_FILE_BYTES
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb > 0):
        raise ValueError(f"{MAX_FILE_MB_SETTING} must be a positive number of megabytes")
    return max(1, int(mb * 1024**2))


def _mb(n: int) -> str:
    return f"{n / 1024**2:.3g} MB"


def over_cap_reason(size: int, what: str = "file") -> str:
    cap = max_file_bytes()
    return f"{what} is {_mb(size)}, over the {_mb(cap)} limit ({MAX_FILE_MB_SETTING})"


def _hidden(parts: Iterable[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _kind_reason(mode: int) -> str:
    kinds = {
        stat.S_IFIFO: "a FIFO (named pipe)",
        stat.S_IFSOCK: "a socket",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFLNK: "a symbolic link",
        stat.S_IFDIR: "a folder",
    }
    what = kinds.get(stat.S_IFMT(mode), "not a plain file")
    return f"not a regular file but {what}; it was not read"


def _unsupported_reason(suffix: str) -> str | None:
    kind = UNSUPPORTED_IMAGE_SUFFIXES.get(suffix)
    if kind is None:
        return None
    return f"{kind} images are not imported; convert it to PNG (or JPEG) and import that"


OTHER_FILE_REASON = "not a PNG, JPEG, DICOM, LabelMe JSON, CSV manifest or .zip file"
NO_SUFFIX_REASON = "no file extension and no DICOM preamble: not an image we import"
ORPHAN_JSON_REASON = "LabelMe JSON without an image of the same name beside it"
NOT_MANIFEST_REASON = "CSV without 'image' and 'patient_id' columns: not a patient manifest"


# --- files on disk -----------------------------------------------------------------------


def _read_regular_file(path: Path) -> bytes:
    """The file's bytes, read only when it is a regular file under the cap.

    Opened non-blocking and checked on the open descriptor: a FIFO swapped in after the
    folder was listed is refused, not waited on.
    """
    cap = max_file_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise SourceError(f"cannot open the file ({e.strerror or type(e).__name__})") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(_kind_reason(st.st_mode))
        if st.st_size > cap:
            raise SourceError(over_cap_reason(st.st_size))
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(cap + 1)
    except OSError as e:
        raise SourceError(f"cannot read the file ({e.strerror or type(e).__name__})") from e
    finally:
        os.close(fd)
    if len(data) > cap:
        raise SourceError(over_cap_reason(len(data)))
    return data


def _stat(path: Path) -> os.stat_result | str:
    """os.stat (links followed), or the plain reason it failed."""
    try:
        return path.stat()
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"


def _file_source(path: Path, manifest: dict[str, dict], size: int) -> Source:
    sidecar = path.with_suffix(".json")
    return Source(
        name=str(path),
        read=lambda: _read_regular_file(path),
        size=size,
        read_labelme=(lambda: _read_regular_file(sidecar)) if sidecar.is_file() else None,
        manifest_row=manifest.get(path.name, {}),
    )


def _read_manifests(
    csv_files: Iterable[tuple[str, Callable[[], bytes]]], out: Collected
) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for name, read in csv_files:
        try:
            text = read().decode("utf-8-sig")
            reader = csv.DictReader(io.StringIO(text))
            if not reader.fieldnames or not set(reader.fieldnames) >= MANIFEST_COLUMNS:
                out.skip(name, NOT_MANIFEST_REASON)
                continue
            for row in reader:
                key = (row.get("image") or "").strip()
                if key:
                    rows[PurePosixPath(key).name] = row
        except SourceError as e:
            out.skip(name, f"CSV not read: {e}")
        except (UnicodeDecodeError, csv.Error):
            # Not a manifest we understand; images still import without it.
            out.skip(name, "CSV is not UTF-8 text a manifest reader understands")
    return rows


def _looks_like_dicom(path: Path) -> bool:
    """A file without a suffix is an image when it has DICOM's preamble (b"DICM" at 128)."""
    from pydicom.misc import is_dicom  # imported here: pydicom costs ~0.2 s to import

    try:
        return is_dicom(path)
    except OSError:
        return False


def _folder_sources(root: Path, out: Collected) -> None:
    regular: list[tuple[Path, int]] = []
    for p in sorted(root.rglob("*")):
        if _hidden(p.relative_to(root).parts):
            continue
        st = _stat(p)
        if isinstance(st, str):
            out.skip(str(p), st)  # e.g. a dangling symbolic link
        elif stat.S_ISDIR(st.st_mode):
            continue
        elif not stat.S_ISREG(st.st_mode):
            out.skip(str(p), _kind_reason(st.st_mode))  # never opened: a FIFO would block
        else:
            regular.append((p, st.st_size))
    csvs = [
        (str(p), (lambda p=p: _read_regular_file(p)))
        for p, _ in regular
        if p.suffix.lower() == ".csv"
    ]
    manifest = _read_manifests(csvs, out)
    images, jsons = [], []
    for p, size in regular:
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES or (suffix == "" and _looks_like_dicom(p)):
            images.append(p)
            out.sources.append(_file_source(p, manifest, size))
        elif suffix == "":
            out.skip(str(p), NO_SUFFIX_REASON)
        elif suffix == ".zip":
            _zip_sources(str(p), lambda p=p: zipfile.ZipFile(p), out, depth=0)
        elif suffix == ".json":
            jsons.append(p)
        elif suffix != ".csv":  # CSVs were read above: a manifest, or listed as skipped
            out.skip(str(p), _unsupported_reason(suffix) or OTHER_FILE_REASON)
    sidecars = {p.with_suffix(".json") for p in images}
    out.skipped.extend(Refusal(str(p), ORPHAN_JSON_REASON) for p in jsons if p not in sidecars)


# --- .zip archives -----------------------------------------------------------------------


def _member_mode(info: zipfile.ZipInfo) -> int:
    """The Unix file type a member was archived with (0 when the archiver recorded none)."""
    return stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member cannot be read, decided from its header before any decompression."""
    if info.flag_bits & 0x1:
        return "encrypted (password-protected) archive member; unzip it with its password first"
    if info.compress_type not in _READABLE_METHODS:
        method = zipfile.compressor_names.get(info.compress_type, "an unknown method")
        return (
            f"archive member is compressed with {method} (method {info.compress_type}), which "
            "cannot be read; re-create the archive with ordinary (Deflate) compression"
        )
    if info.file_size > max_file_bytes():
        return over_cap_reason(info.file_size, "archive member")
    return None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, inflated in chunks and stopped at the cap, whatever the header says."""
    problem = _member_problem(info)
    if problem:
        raise SourceError(problem)
    cap = max_file_bytes()
    data = bytearray()
    try:
        with archive.open(info) as f:
            while chunk := f.read(_CHUNK):
                data += chunk
                if len(data) > cap:
                    raise SourceError(
                        f"archive member inflates past the {_mb(cap)} limit "
                        f"({MAX_FILE_MB_SETTING}) although its header claims {_mb(info.file_size)}"
                    )
    except SourceError:
        raise
    except zipfile.BadZipFile as e:
        raise SourceError(
            "archive member is damaged (its data does not match the archive's checksum or "
            "size); re-create the archive"
        ) from e
    except Exception as e:  # noqa: BLE001 - zlib, lzma, bz2 and zipfile raise their own types
        raise SourceError(
            f"archive member cannot be decompressed ({type(e).__name__}); re-create the archive"
        ) from e
    return bytes(data)


def _peek(archive: zipfile.ZipFile, info: zipfile.ZipInfo, n: int) -> bytes:
    """The first n bytes of a readable member (b"" when it cannot be read)."""
    if _member_problem(info):
        return b""
    try:
        with archive.open(info) as f:
            return f.read(n)
    except Exception:  # noqa: BLE001 - judged again, with the reason, when imported
        return b""


def _zip_sources(
    name: str, open_archive: Callable[[], zipfile.ZipFile], out: Collected, depth: int
) -> None:
    """Sources for an archive's members; a .zip inside it is read too (one level deep)."""
    try:
        archive = open_archive()
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as e:
        out.sources.append(_refused_source(name, f"not a readable .zip archive ({e})"))
        return
    except SourceError as e:
        out.sources.append(_refused_source(name, str(e)))
        return
    except Exception as e:  # noqa: BLE001 - a damaged central directory raises many types
        out.sources.append(
            _refused_source(name, f"not a readable .zip archive ({type(e).__name__})")
        )
        return

    by_name: dict[str, list[zipfile.ZipInfo]] = {}
    for info in infos:
        by_name.setdefault(info.filename, []).append(info)

    def label(info: zipfile.ZipInfo) -> str:
        same = by_name[info.filename]
        where = f"{name}!{info.filename}"
        # Two entries with one name are two files: each is named, and judged, on its own.
        return f"{where} [entry {same.index(info) + 1} of {len(same)}]" if len(same) > 1 else where

    def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
        return lambda: _read_member(archive, info)

    def sidecar_reader(member: str) -> Callable[[], bytes] | None:
        same = by_name.get(member, [])
        if len(same) == 1:
            return reader(same[0])
        if not same:
            return None

        def ambiguous() -> bytes:
            raise SourceError(
                f"the archive holds {len(same)} entries named {PurePosixPath(member).name}; "
                "cannot tell which one belongs to the image"
            )

        return ambiguous

    regular = []
    for info in sorted(infos, key=lambda i: i.filename):
        if _hidden(PurePosixPath(info.filename).parts):
            continue
        mode = _member_mode(info)
        if mode and mode != stat.S_IFREG:
            out.skip(label(info), _kind_reason(mode))  # a FIFO or link stored in the archive
        else:
            regular.append(info)
    manifest = _read_manifests(
        ((label(i), reader(i)) for i in regular if i.filename.lower().endswith(".csv")), out
    )
    images, jsons = set(), []
    for info in regular:
        member = PurePosixPath(info.filename)
        suffix = member.suffix.lower()
        if suffix in IMAGE_SUFFIXES or (
            # A suffixless member is a DICOM when it has the preamble; one that cannot be
            # read at all is imported so that its refusal says why.
            suffix == "" and (_member_problem(info) or _peek(archive, info, 132)[128:] == b"DICM")
        ):
            sidecar = str(member.with_suffix(".json"))
            images.add(sidecar)
            out.sources.append(
                Source(
                    name=label(info),
                    read=reader(info),
                    size=info.file_size,
                    read_labelme=sidecar_reader(sidecar),
                    manifest_row=manifest.get(member.name, {}),
                )
            )
        elif suffix == "":
            out.skip(label(info), NO_SUFFIX_REASON)
        elif suffix == ".zip" and depth >= 1:
            out.skip(
                label(info),
                "a .zip inside a .zip inside a .zip: only one level of nesting is read; "
                "unzip the outer archive first",
            )
        elif suffix == ".zip":
            _zip_sources(label(info), lambda info=info: _spooled(archive, info), out, depth + 1)
        elif suffix == ".json":
            jsons.append(info)
        elif suffix != ".csv":  # CSVs were read above: a manifest, or listed as skipped
            out.skip(label(info), _unsupported_reason(suffix) or OTHER_FILE_REASON)
    out.skipped.extend(
        Refusal(label(i), ORPHAN_JSON_REASON) for i in jsons if i.filename not in images
    )


def _spooled(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> zipfile.ZipFile:
    """A .zip member opened as an archive from a temporary file, not from memory: the
    sources of every nested archive stay pending until the import reads them, so holding
    each inner archive in memory would add up to several times the size cap."""
    spool = tempfile.TemporaryFile(prefix="pneumolab-zip-")  # noqa: SIM115 - the archive keeps it
    try:
        spool.write(_read_member(archive, info))
        spool.seek(0)
        return zipfile.ZipFile(spool)
    except BaseException:
        spool.close()
        raise


def _refused_source(name: str, reason: str) -> Source:
    def fail() -> bytes:
        raise SourceError(reason)

    return Source(name=name, read=fail, size=0)


def collect(paths: Iterable[str | Path]) -> Collected:
    """Every import source under `paths`, and what was skipped there (with the reason).

    A path given by name that cannot be imported (missing, a FIFO) becomes a source that
    refuses; what a folder or archive holds besides images is listed as skipped.
    """
    out = Collected()
    for raw in paths:
        path = Path(raw)
        st = _stat(path)
        if isinstance(st, str):
            out.sources.append(_refused_source(str(path), st))
        elif stat.S_ISDIR(st.st_mode):
            _folder_sources(path, out)
        elif not stat.S_ISREG(st.st_mode):
            out.sources.append(_refused_source(str(path), _kind_reason(st.st_mode)))
        elif path.suffix.lower() == ".zip":
            _zip_sources(str(path), lambda p=path: zipfile.ZipFile(p), out, depth=0)
        else:
            out.sources.append(_file_source(path, {}, st.st_size))
    return out


def collect_sources(paths: Iterable[str | Path]) -> list[Source]:
    """Every import source under `paths` (collect() without the skipped list)."""
    return collect(paths).sources


def bytes_source(name: str, data: bytes, labelme: bytes | None = None) -> Source:
    """A source for bytes already in memory (browser uploads)."""
    return Source(
        name=name,
        read=lambda: data,
        size=len(data),
        read_labelme=(lambda: labelme) if labelme is not None else None,
    )
