"""A hostile-input corpus, built here from real files and small crafted ones (no committed
binaries), imported in ONE batch — a folder and a .zip — through the importer and through
the `pneumolab import` command: every good file imports, every bad one is refused by name
with the right plain-language reason, what is not an image is listed as skipped, and the
refused files change neither the database nor the image store.

Limits are modest here (PNEUMOLAB_MAX_FILE_MB=8) so the whole corpus imports in seconds.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from core.ingest.importer import import_paths
from db.models import AnnotationRevision, Image

CAP_MB = 8  # PNEUMOLAB_MAX_FILE_MB for these tests: RG1_UNCI.dcm (7 MB) fits, 9 MB does not
OVER_CAP = 9 * 1024**2
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def modest_cap(monkeypatch):
    monkeypatch.setenv("PNEUMOLAB_MAX_FILE_MB", str(CAP_MB))
    monkeypatch.delenv("PNEUMOLAB_ACCEPT_ANY_MODALITY", raising=False)


# --- crafted files ---------------------------------------------------------------------------


def png_bytes(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    """A small grey PNG with its own pixels (so each one is a new image)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def labelme(size: tuple[int, int] = (48, 40), shapes: list | None = None, **extra) -> dict:
    w, h = size
    triangle = {"label": "lung", "points": [[2, 2], [30, 4], [10, 30]], "shape_type": "polygon"}
    return {
        "version": "5.5.0",
        "flags": {},
        "shapes": [triangle] if shapes is None else shapes,
        "imagePath": "x.png",
        "imageData": None,
        "imageHeight": h,
        "imageWidth": w,
        **extra,
    }


def deep(n: int) -> str:
    return "[" * n + "]" * n


def bad_labelme_files(png_claiming) -> dict[str, tuple[bytes, str]]:
    """stem -> (LabelMe JSON bytes beside a good PNG, phrase its refusal must contain)."""
    poly = [[2, 2], [30, 4], [10, 30]]
    huge = "1" + "0" * 399  # a coordinate with 400 digits
    files = {
        "lm_overflow": (
            '{"version": "5.5.0", "flags": {}, "imagePath": "x.png", "imageData": null, '
            '"imageHeight": 40, "imageWidth": 48, "shapes": [{"label": "lung", "shape_type": '
            f'"polygon", "points": [[2, 2], [{huge}, 4], [10, 30]]}}]}}',
            "too large to be a pixel position",
        ),
        "lm_deep_nesting": ('{"shapes": ' + deep(100_000) + "}", "nested"),
        "lm_deep_extra": (
            json.dumps(labelme())[:-1] + ', "provenance": ' + deep(500) + "}",
            "nested",
        ),
        "lm_duplicate_shapes": (
            json.dumps(labelme())[:-1] + ', "shapes": []}',
            "duplicate key 'shapes'",
        ),
        "lm_many_digits": (
            json.dumps(labelme(shapes=[]))[:-1] + ', "n": ' + "9" * 5000 + "}",
            "too many digits",
        ),
        "lm_long_label": (
            json.dumps(labelme(shapes=[{"label": "x" * 10_000, "points": poly}])),
            "64-character limit",
        ),
        "lm_vertices": (
            json.dumps(labelme(shapes=[{"label": "lung", "points": [[1, 1]] * 100_001}])),
            "100001 vertices, over the limit",
        ),
        "lm_big_extra": (
            json.dumps(labelme(shapes=[{"label": "lung", "points": poly, "note": "n" * 100_000}])),
            "extra keys ['note'] are over the limit",
        ),
        "lm_bomb_image_data": (
            json.dumps(labelme(imageData=base64.b64encode(png_claiming(30_000, 30_000)).decode())),
            "imageData is an image",
        ),
        "lm_too_big": (json.dumps(labelme()) + " " * OVER_CAP, "over the 8 MB limit"),
    }
    return {k: (v.encode(), phrase) for k, (v, phrase) in files.items()}


def patch_zip(data: bytes, member: str, local_at: int, central_at: int, value: bytes) -> bytes:
    """Overwrite a field of `member`'s local header and its central directory entry."""
    out = bytearray(data)
    name = member.encode()
    for sig, at in ((b"PK\x03\x04", local_at), (b"PK\x01\x02", central_at)):
        name_at = 30 if sig == b"PK\x03\x04" else 46
        pos = out.find(sig)
        while pos >= 0:
            if out[pos + name_at : pos + name_at + len(name)] == name:
                out[pos + at : pos + at + len(value)] = value
                break
            pos = out.find(sig, pos + 4)
    return bytes(out)


def zip_bytes(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": on purpose
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for info, payload in entries:
                z.writestr(info, payload)
    return buf.getvalue()


def make_dicom_with_damaged_rows(path: Path, make_dicom) -> Path:
    """Rows (US) stored as text holding a patient name: int(ds.Rows) would quote it."""
    import pydicom
    from pydicom.dataelem import DataElement

    make_dicom(path, np.zeros((16, 16), np.uint16))
    ds = pydicom.dcmread(path)
    del ds[0x00280010]
    ds.add(DataElement(0x00280010, "LO", "DOE^JOHN"))
    ds.save_as(path, enforce_file_format=True)
    return path


# --- the corpus ------------------------------------------------------------------------------


@dataclass
class Corpus:
    root: Path
    paths: list[Path]  # what the user names: a folder and a .zip
    good: dict[str, int] = field(default_factory=dict)  # name -> LabelMe shapes it brings
    refused: dict[str, str] = field(default_factory=dict)  # name -> phrase
    annotations_refused: dict[str, str] = field(default_factory=dict)  # image name -> phrase
    skipped: dict[str, str] = field(default_factory=dict)  # name -> phrase

    def rel(self, name: str) -> str:
        return name.replace(f"{self.root}/", "")


def build_corpus(
    root: Path, cxr_lungs_dir: Path, dicom_mono1: Path, make_dicom, png_claiming
) -> Corpus:
    from pydicom.data import get_testdata_file

    folder, c = root / "batch", Corpus(root, [])
    folder.mkdir(parents=True)
    seed = iter(range(1000))

    # Good real files: JPEGs with their LabelMe lungs, the real CR DICOM.
    jpegs = sorted(cxr_lungs_dir.glob("*.jpg"))[:3]
    for jpeg in jpegs:
        shutil.copy(jpeg, folder / jpeg.name)
        shutil.copy(jpeg.with_suffix(".json"), folder / jpeg.with_suffix(".json").name)
        c.good[f"batch/{jpeg.name}"] = 2
    shutil.copy(dicom_mono1, folder / "chest.dcm")
    c.good["batch/chest.dcm"] = 0

    # LabelMe files that must be refused; their (good) images still import.
    for stem, (data, phrase) in bad_labelme_files(png_claiming).items():
        (folder / f"{stem}.png").write_bytes(png_bytes(next(seed)))
        (folder / f"{stem}.json").write_bytes(data)
        c.good[f"batch/{stem}.png"] = 0
        c.annotations_refused[f"batch/{stem}.png"] = phrase

    # Images that must be refused.
    noise = np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    refused_files = {
        "random.dcm": (noise, "not a DICOM file"),
        "garbled.png": (b"\x89PNG\r\n\x1a\n" + noise, "cannot be read as an image"),
        "bomb.png": (png_claiming(30_000, 30_000), "over the limit"),
        "big.png": (b"\x89PNG\r\n\x1a\n" + bytes(OVER_CAP), "over the 8 MB limit"),
    }
    for name, (data, phrase) in refused_files.items():
        (folder / name).write_bytes(data)
        c.refused[f"batch/{name}"] = phrase
    for name, modality in [
        ("CT_small.dcm", "CT"),
        ("MR_small.dcm", "MR"),
        ("JPGExtended.dcm", "NM"),
        ("liver_1frame.dcm", "SEG"),
        ("rtdose_1frame.dcm", "RTDOSE"),
    ]:
        shutil.copy(get_testdata_file(name, download=False), folder / f"other_{name}")
        c.refused[f"batch/other_{name}"] = f"modality {modality} is not a chest radiograph (CR/DX)"
    raw = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4096
    make_dicom(folder / "rows_mismatch.dcm", raw, Rows=32)
    c.refused["batch/rows_mismatch.dcm"] = "Rows/Columns do not match the pixel data"
    make_dicom(folder / "slope_zero.dcm", raw, RescaleSlope="0", RescaleIntercept="0")
    c.refused["batch/slope_zero.dcm"] = "RescaleSlope is 0"
    make_dicom_with_damaged_rows(folder / "damaged_rows.dcm", make_dicom)
    c.refused["batch/damaged_rows.dcm"] = "attribute Rows is damaged"

    # Found in the folder, not imported: listed as skipped.
    os.mkfifo(folder / "pipe.png")
    c.skipped["batch/pipe.png"] = "not a regular file but a FIFO"
    for name, kind in [("scan.tif", "TIFF"), ("scan.bmp", "BMP"), ("scan.webp", "WebP")]:
        PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)
        c.skipped[f"batch/{name}"] = f"{kind} images are not imported"
    (folder / "orphan.json").write_text(json.dumps(labelme()))
    c.skipped["batch/orphan.json"] = "without an image"

    # The archive, named beside the folder.
    archive = root / "hostile.zip"
    jpeg = sorted(cxr_lungs_dir.glob("*.jpg"))[3]
    fifo = zipfile.ZipInfo("pipe.png")
    fifo.create_system, fifo.external_attr = 3, (stat.S_IFIFO | 0o644) << 16
    innermost = zip_bytes([("deeper.png", png_bytes(next(seed)))])
    nested = zip_bytes([("inner.png", png_bytes(next(seed))), ("innermost.zip", innermost)])
    entries = [
        (f"lungs/{jpeg.name}", jpeg.read_bytes()),
        (f"lungs/{jpeg.with_suffix('.json').name}", jpeg.with_suffix(".json").read_bytes()),
        ("a.png", png_bytes(next(seed))),  # two entries with one name: each judged alone
        ("a.png", b"not a png at all"),
        ("secret.png", png_bytes(next(seed))),
        ("deflate64.png", png_bytes(next(seed))),
        ("zeros.dcm", bytes(OVER_CAP)),
        ("liar.png", b"\x89PNG\r\n\x1a\n" + bytes(OVER_CAP)),
        ("nested.zip", nested),
        (fifo, b""),
        ("scan.bmp", (folder / "scan.bmp").read_bytes()),
        ("orphan.json", b"{}"),
    ]
    data = zip_bytes(entries)
    data = patch_zip(data, "secret.png", 6, 8, struct.pack("<H", 0x1))  # "encrypted"
    data = patch_zip(data, "deflate64.png", 8, 10, struct.pack("<H", 9))  # Deflate64
    data = patch_zip(data, "liar.png", 22, 24, struct.pack("<I", 1000))  # claims 1,000 bytes
    archive.write_bytes(data)
    z = "hostile.zip!"
    c.good[f"{z}lungs/{jpeg.name}"] = 2
    c.good[f"{z}a.png [entry 1 of 2]"] = 0
    c.refused[f"{z}a.png [entry 2 of 2]"] = "not a PNG, JPEG or DICOM"
    c.refused[f"{z}secret.png"] = "encrypted"
    c.refused[f"{z}deflate64.png"] = "deflate64"
    c.refused[f"{z}zeros.dcm"] = "is 9 MB, over the 8 MB limit"
    c.refused[f"{z}liar.png"] = "damaged"
    c.good[f"{z}nested.zip!inner.png"] = 0
    c.skipped[f"{z}nested.zip!innermost.zip"] = "only one level of nesting"
    c.skipped[f"{z}pipe.png"] = "not a regular file but a FIFO"
    c.skipped[f"{z}scan.bmp"] = "BMP images are not imported"
    c.skipped[f"{z}orphan.json"] = "without an image"
    c.paths = [folder, archive]
    return c


@pytest.fixture
def corpus(tmp_path, cxr_lungs_dir, dicom_mono1, make_dicom, png_claiming) -> Corpus:
    return build_corpus(tmp_path / "corpus", cxr_lungs_dir, dicom_mono1, make_dicom, png_claiming)


def counts(ws) -> tuple[int, int, dict[str, str]]:
    """(image rows, revision rows, store file digests): what 'unchanged' compares."""
    with ws.sessions() as s:
        images = s.scalar(select(func.count(Image.id)))
        revisions = s.scalar(select(func.count(AnnotationRevision.id)))
    files = {
        str(p.relative_to(ws.store_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in ws.store_dir.rglob("*")
        if p.is_file()
    }
    return images, revisions, files


def check_summary(c: Corpus, summary: dict) -> None:
    refused = {c.rel(r["path"]): r["reason"] for r in summary["refused"]}
    skipped = {c.rel(r["path"]): r["reason"] for r in summary["skipped"]}
    expected_refused = {**c.refused, **c.annotations_refused}
    assert set(refused) == set(expected_refused), sorted(set(refused) ^ set(expected_refused))
    for name, phrase in c.refused.items():
        assert phrase.lower() in refused[name].lower(), (name, refused[name])
    for name, phrase in c.annotations_refused.items():
        assert refused[name].startswith("annotations not imported: "), (name, refused[name])
        assert phrase.lower() in refused[name].lower(), (name, refused[name])
    assert set(skipped) == set(c.skipped), sorted(set(skipped) ^ set(c.skipped))
    for name, phrase in c.skipped.items():
        assert phrase.lower() in skipped[name].lower(), (name, skipped[name])
    for reason in [*refused.values(), *skipped.values()]:
        # Plain words: no object reprs, no header values, no folders beyond the file's name.
        assert " at 0x" not in reason and "<_io" not in reason, reason
        assert "DOE" not in reason and "JOHN" not in reason, reason
        assert str(c.root) not in reason, reason
        assert len(reason) < 400, reason
    assert summary["imported"] == len(c.good)
    assert summary["duplicates"] == 0
    assert summary["annotations"] == sum(c.good.values())


def test_one_batch_of_hostile_files_imports_every_good_one_and_refuses_each_bad_one(
    workspace, corpus
):
    report = import_paths(workspace, corpus.paths)
    check_summary(corpus, report.summary())
    images, revisions, _ = counts(workspace)
    assert images == len(corpus.good)
    assert revisions == sum(1 for n in corpus.good.values() if n)


def test_cli_imports_the_corpus_exits_2_without_a_traceback(tmp_path, corpus):
    fifo = corpus.root / "given.png"
    os.mkfifo(fifo)  # named on the command line: refused, never opened (it would block)
    corpus.refused["given.png"] = "not a regular file but a FIFO"
    env = {**os.environ, "PNEUMOLAB_MAX_FILE_MB": str(CAP_MB), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PNEUMOLAB_ACCEPT_ANY_MODALITY", None)
    cmd = [sys.executable, "-m", "core.cli", "--workspace", str(tmp_path / "ws"), "import"]
    done = subprocess.run(
        [*cmd, *map(str, corpus.paths), str(fifo)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    check_summary(corpus, json.loads(lines[0]))


def test_refused_files_change_neither_database_nor_store(workspace, corpus, tmp_path):
    good = import_paths(workspace, corpus.paths)
    before = counts(workspace)
    assert before[0] == len(good.imported) == len(corpus.good)

    # Only bad files: the refused images, and the bad LabelMe files beside copies of images
    # already stored (so each image is a duplicate and only its annotations are judged).
    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    for name in [*corpus.refused, *corpus.annotations_refused]:
        if "!" in name:
            continue
        src = corpus.root / name
        shutil.copy(src, only_bad / src.name)
        if src.with_suffix(".json").exists():
            shutil.copy(src.with_suffix(".json"), only_bad / src.with_suffix(".json").name)
    report = import_paths(workspace, [only_bad, corpus.paths[1]])
    assert report.imported == []
    bad = [*corpus.refused, *corpus.annotations_refused]
    expected = {f"only-bad/{Path(n).name}" for n in bad if "!" not in n}
    expected |= {f"corpus/{n}" for n in bad if "!" in n}
    assert {r.path.replace(f"{tmp_path}/", "") for r in report.refused} == expected
    assert counts(workspace) == before
