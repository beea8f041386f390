"""Shared fixtures: where the real data lives, throwaway workspaces (empty, with real X-rays
imported, or built once per module and copied per test), DICOM files built to order, one
torch thread, a free TCP port.

Test modules cannot import this file (pytest runs with --import-mode=importlib), so every
helper a test calls is handed out as a fixture.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

if TYPE_CHECKING:
    from core.ingest.importer import ImportReport
    from core.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TESTS_DIR = Path(__file__).resolve().parent


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(
            f"Real test data missing: {path}. Clone the project beside ../shared "
            "(the shared/data folder with cxr-lungs/ and dicom/) and run the tests again.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real X-rays and DICOMs in ../shared/data (fails clearly when absent)."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def cxr_lungs_dir(shared_data: Path) -> Path:
    return _require(shared_data / "cxr-lungs" / "images")


@pytest.fixture(scope="session")
def dicom_mono1(shared_data: Path) -> Path:
    return _require(shared_data / "dicom" / "RG1_UNCI.dcm")


@pytest.fixture(scope="session")
def dicom_j2k(shared_data: Path) -> Path:
    return _require(shared_data / "dicom" / "RG1_J2KR.dcm")


@pytest.fixture
def workspace(tmp_path: Path):
    """A fresh workspace (real SQLite file + image store) in the test's tmp dir."""
    from core.workspace import Workspace

    ws = Workspace.open(tmp_path / "workspace")
    yield ws
    ws.dispose()


# --- workspaces holding real X-rays ------------------------------------------------------------

LUNGS_PER_IMAGE = 2  # every LabelMe file of cxr-lungs outlines both lungs


@pytest.fixture(scope="session")
def import_real_images(cxr_lungs_dir: Path) -> Callable[..., ImportReport]:
    """import_real_images(ws, n=0, *, also=(), labelme=True) -> ImportReport.

    Imports the files in `also`, then the first n JPEGs of cxr-lungs (sorted by name), through
    the product's own import; with labelme=True each JPEG brings its LabelMe lungs (reader
    "import"), with labelme=False only its pixels. n=None imports the whole folder, as a user
    would (its two pixel-identical JPEGs then count once: the caller checks that report).
    Fails unless every file was stored as a new image with all its lungs.
    """
    from core.ingest.importer import import_sources
    from core.ingest.sources import collect_sources

    def run(
        ws: Workspace, n: int | None = 0, *, also: Sequence[Path] = (), labelme: bool = True
    ) -> ImportReport:
        jpegs = [cxr_lungs_dir] if n is None else sorted(cxr_lungs_dir.glob("*.jpg"))[:n]
        sources = collect_sources([*also, *jpegs])
        if not labelme:
            sources = [replace(src, read_labelme=None) for src in sources]
        report = import_sources(ws, sources)
        assert not report.refused, report.summary()
        if n is not None:
            assert len(report.imported) == len(sources), report.summary()
            lungs = LUNGS_PER_IMAGE * sum(src.read_labelme is not None for src in sources)
            assert report.annotations == lungs, (
                f"LabelMe lungs not all imported: {report.summary()}"
            )
        return report

    return run


@pytest.fixture
def imported_workspace(tmp_path: Path, import_real_images) -> Iterator[Callable[..., Workspace]]:
    """imported_workspace(n=0, *, root=tmp/ws, also=(), labelme=True) -> Workspace.

    A workspace at root holding what import_real_images(ws, n, ...) imports; disposed after
    the test.
    """
    from core.workspace import Workspace

    opened = []

    def make(n: int = 0, *, root: Path | None = None, **kw) -> Workspace:
        ws = Workspace.open(root or tmp_path / "ws")
        opened.append(ws)
        import_real_images(ws, n, **kw)
        return ws

    yield make
    for ws in opened:
        ws.dispose()


@pytest.fixture(scope="module")
def prepared_workspace(
    tmp_path_factory, import_real_images, torch_one_thread
) -> Callable[[str, int, Callable[[Workspace], object]], Path]:
    """prepared_workspace(name, n, setup) -> root, for a module-scoped fixture of a module
    that needs the same costly state in every test (trained versions, predictions).

    Imports the first n real JPEGs with their lungs into a new workspace, runs setup(ws) on it
    (one torch thread), closes it and returns its folder. Tests open copies of it
    (workspace_copy), so that no test sees another's changes.
    """
    from core.workspace import Workspace

    def prepare(name: str, n: int, setup: Callable[[Workspace], object]) -> Path:
        root = tmp_path_factory.mktemp(name) / "ws"
        ws = Workspace.open(root)
        try:
            import_real_images(ws, n)
            setup(ws)
        finally:
            ws.dispose()
        return root

    return prepare


@pytest.fixture
def workspace_copy(tmp_path: Path) -> Iterator[Callable[[Path], Workspace]]:
    """workspace_copy(root) -> Workspace: a copy of the workspace folder at root, opened from
    tmp/ws and disposed after the test."""
    from core.workspace import Workspace

    opened = []

    def copy(root: Path) -> Workspace:
        shutil.copytree(root, tmp_path / "ws")
        opened.append(Workspace.open(tmp_path / "ws"))
        return opened[-1]

    yield copy
    for ws in opened:
        ws.dispose()


@pytest.fixture(scope="session")
def train_and_predict() -> Callable[..., int]:
    """train_and_predict(ws, **settings) -> version id: a tiny lung model (resnet18, 32 px, one
    epoch on CPU) trained and its prediction job run, both through the job runner, in this
    process. `settings` go to the TrainRequest (e.g. activate="never", seed=1)."""
    from core import jobs
    from core.tasks.submit import TrainRequest, submit_training

    def run(ws: Workspace, **settings) -> int:
        request = TrainRequest(
            label="lung", encoder="resnet18", size=32, epochs=1, batch_size=4, device="cpu",
            **settings,
        )  # fmt: skip
        done = jobs.run_job(ws, submit_training(ws, request))
        assert done.state == "succeeded", done.error
        predicted = jobs.run_job(ws, done.result["prediction_job"])
        assert predicted.state == "succeeded", predicted.error
        return done.result["model_version"]

    return run


# --- processes and threads -------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[None]:
    """Torch on one CPU thread from the first test of a module that asks for it to the end of
    that module: on a shared two-core CI machine a starved thread pool spins and trains several
    times slower than one thread. Module-scoped so that module fixtures that train can ask too.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """free_port() -> a TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    return _free_port


CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def _make_dicom(
    path: Path,
    raw: np.ndarray | None,
    *,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    samples: int = 1,
    **tags,
) -> Path:
    """Write a minimal single-frame CR DICOM (Explicit VR Little Endian) with `raw` pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Synthetic"
    ds.PatientID = "SYN-0001"
    ds.Modality = "CR"
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if raw is not None:
        signed = raw.dtype.kind == "i"
        ds.Rows, ds.Columns = raw.shape[:2]
        ds.BitsAllocated = raw.dtype.itemsize * 8
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if samples > 1:
            ds.PlanarConfiguration = 0
        ds.PixelData = np.ascontiguousarray(raw).tobytes()
    else:
        ds.Rows, ds.Columns = 64, 64
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def make_dicom() -> Callable[..., Path]:
    """make_dicom(path, raw, bits_stored=12, photometric="MONOCHROME2", samples=1, **tags)."""
    return _make_dicom


@pytest.fixture(scope="session")
def workers():
    """tests/workers.py: the worker processes of the concurrency tests (run_workers, specs,
    checks). Loaded by path: with --import-mode=importlib tests are not importable by name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "pneumolab_test_workers", TESTS_DIR / "workers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes whose PNG header claims width x height (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def png_claiming() -> Callable[[int, int], bytes]:
    """png_claiming(width, height) -> a tiny PNG whose header claims that size (a bomb)."""
    return _png_claiming


@pytest.fixture(scope="session")
def job_processes():
    """tests/core/jobs/processes.py as a module (env, run, spawn, start_worker, ...), loaded
    by path: with --import-mode=importlib test helpers are not importable by name."""
    spec = importlib.util.spec_from_file_location(
        "pneumolab_job_processes", Path(__file__).resolve().parent / "core/jobs/processes.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def reap():
    """reap(proc) -> proc: the process (and its session) is killed after the test if still
    running."""
    procs: list[subprocess.Popen] = []

    def add(proc: subprocess.Popen) -> subprocess.Popen:
        procs.append(proc)
        return proc

    yield add
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(10)
