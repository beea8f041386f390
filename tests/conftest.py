"""Shared fixtures: where the real data lives, and throwaway workspaces."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


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
