"""AppTest fixtures: run app/main.py the way `streamlit run` does, on a workspace in tmp.

Every page test opens the app through `open_app` (the one place that knows where app/main.py
is) after pointing it at a workspace with `point_app` or `app_env`. The app opens logged in as
the workspace's admin account "reader" (made on first use, tests/logins.py), unless told
another account or `login=None`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP_DIR = Path(__file__).resolve().parents[2] / "app"
MAIN = str(APP_DIR / "main.py")


def _logins():
    """tests/logins.py (the test tree is not a package)."""
    name = "pneumolab_test_logins"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, APP_DIR.parent / "tests/logins.py")
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


logins = _logins()


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


def _open_app(
    page: str | None = None,
    *,
    timeout: float = 120,
    navigate: bool = False,
    query: dict[str, str] | None = None,
    login: str | None = logins.ADMIN,
    role: str = "admin",
    **state,
) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=timeout)
    if login is not None:  # a session started the way the login form starts one
        from core.workspace import Workspace

        ws = Workspace.open(os.environ["PNEUMOLAB_HOME"])
        try:
            at.session_state["auth_token"] = logins.login_token(ws, login, role)
        finally:
            ws.dispose()
    for key, value in state.items():
        at.session_state[key] = value
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if page is not None:
        if navigate:  # the start page first, then the page: as a user who follows a link
            at.run()
        at.switch_page(f"app_pages/{page}.py")
    return at.run()


@pytest.fixture(scope="session")
def open_app() -> Callable[..., AppTest]:
    """open_app(page=None, *, timeout=120, navigate=False, query=None, login="reader",
    role="admin", **state) -> AppTest, run once.

    A fresh browser session (what a reload or a restart gives) with `state` in its session
    state, on app_pages/<page>.py (the start page when page is None), opened from a link with
    the `query` parameters. navigate=True runs the start page first and then switches to the
    page. It is logged in as the account `login` (made with `role` and tests/logins.py's
    password if missing); login=None opens it with nobody logged in.
    """
    return _open_app
