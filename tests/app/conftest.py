"""AppTest fixtures: run app/main.py the way `streamlit run` does, on a workspace in tmp."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "app"


@pytest.fixture
def point_app(monkeypatch) -> Callable[[Path], Path]:
    """point_app(root): make the app open the workspace at root, with no worker autostart.

    Streamlit puts the script's folder on sys.path (pages import `ui_state`), so do the same.
    """

    def point(root: Path) -> Path:
        monkeypatch.setenv("PNEUMOLAB_HOME", str(root))
        monkeypatch.setenv("PNEUMOLAB_AUTOSTART_WORKER", "0")
        monkeypatch.delenv("PNEUMOLAB_DATABASE_URL", raising=False)
        monkeypatch.delenv("PNEUMOLAB_STORE", raising=False)
        monkeypatch.syspath_prepend(str(APP_DIR))
        return root

    return point


@pytest.fixture
def app_env(tmp_path: Path, point_app) -> Path:
    """The app pointed at a fresh workspace folder in tmp; returns that folder."""
    return point_app(tmp_path / "ws")
