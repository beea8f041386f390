"""Real-browser harness: a Streamlit server on a temporary workspace, driven by Chromium.

Every e2e test gets `app_server` (a factory that starts `streamlit run app/main.py` on a
workspace folder and returns its URL) and `page` (a fresh Playwright page in Debian's
Chromium), logged in as the workspace's admin account "reader" (a login cookie for a
session made by core.accounts, tests/logins.py) unless the test asks for login=None.
Screenshots go to `artifacts` (the test's tmp dir, copied to $PNEUMOLAB_ARTIFACTS when set, so
CI keeps them).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.e2e


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"Streamlit did not become healthy in {timeout}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            "Chromium missing at /usr/bin/chromium: run `apt-get install -y chromium` "
            "(.ci/run does this).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1600, "height": 1100}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


@pytest.fixture
def artifacts(tmp_path: Path, request) -> Iterator[Path]:
    """Folder for screenshots; copied to $PNEUMOLAB_ARTIFACTS/<test name> after the test."""
    out = tmp_path / "artifacts"
    out.mkdir()
    yield out
    keep = os.environ.get("PNEUMOLAB_ARTIFACTS")
    if keep and any(out.iterdir()):
        dest = Path(keep) / request.node.name.replace("/", "_")
        shutil.copytree(out, dest, dirs_exist_ok=True)


def _logins():
    """tests/logins.py (the test tree is not a package)."""
    name = "pneumolab_test_logins"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "logins.py")
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


logins = _logins()
SESSION_COOKIE = "pneumolab_session"  # app/auth.py COOKIE


def log_in_browser(page, url: str, workspace: Path, name: str = logins.ADMIN, role="admin"):
    """Give the page's browser a login cookie for a new session of account `name` (made with
    `role` if missing): what the login form leaves behind, without typing the password."""
    from core.workspace import Workspace

    ws = Workspace.open(workspace)
    try:
        value = logins.session_cookie(ws, name, role)
    finally:
        ws.dispose()
    page.context.add_cookies([{"name": SESSION_COOKIE, "value": value, "url": url}])


@pytest.fixture
def app_server(tmp_path: Path, free_port, page) -> Iterator[Callable[..., str]]:
    """Factory: app_server(workspace_dir, autostart_worker=False, env=None, *, login="reader",
    secrets=None) -> base URL.

    The worker is off unless asked for, so tests that do not run jobs stay quiet; tests that
    need jobs pass autostart_worker=True (the app then spawns `pneumolab worker` itself).
    `page` is logged in as the admin account `login` (made if missing, tests/logins.py);
    login=None leaves it logged out. `secrets(base_url)` returns the text of the server's
    .streamlit/secrets.toml, written to a temporary folder (single sign-on tests).
    """
    procs: list[tuple[subprocess.Popen, Path]] = []

    def start(
        workspace: Path,
        autostart_worker: bool = False,
        env: dict[str, str] | None = None,
        *,
        login: str | None = logins.ADMIN,
        secrets: Callable[[str], str] | None = None,
    ) -> str:
        port = free_port()
        log = tmp_path / f"streamlit-{port}.log"
        url = f"http://127.0.0.1:{port}"
        extra: list[str] = []
        if secrets is not None:
            secrets_file = tmp_path / f"secrets-{port}" / "secrets.toml"
            secrets_file.parent.mkdir()
            secrets_file.write_text(secrets(url))
            extra = ["--secrets.files", str(secrets_file)]
        full_env = {
            **os.environ,
            "PNEUMOLAB_AUTOSTART_WORKER": "1" if autostart_worker else "0",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            **(env or {}),
        }
        cmd = [
            sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app" / "main.py"),
            "--server.headless", "true", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", *extra,
            "--", "--workspace", str(workspace),
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        procs.append((proc, log))
        _wait_healthy(url, proc, log)
        if login is not None:
            log_in_browser(page, url, workspace, login)
        return url

    yield start
    for proc, _ in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_app(page) -> None:
    """Wait until Streamlit has finished running the script (no 'Running...' indicator)."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText"
        ".includes('Running')",
        timeout=60_000,
    )


@pytest.fixture
def settle() -> Callable[[object], None]:
    """settle(page): wait until the Streamlit script run has finished."""
    return wait_for_app
