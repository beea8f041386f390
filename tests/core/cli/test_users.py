"""`pneumolab users ...` and `--as NAME`, run as a user runs them (a fresh process each, the
password piped in on stdin): the first admin is made headless, then every command that
changes data needs an account, checked against the workspace's accounts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ADMIN_PW = "admin password 1"


def _cli(*args: str, stdin: str = "") -> tuple[int, dict, str]:
    """(exit status, the one JSON line, stderr) of `pneumolab *args` with `stdin` piped in."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=REPO, env=env, input=stdin, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {done.stdout!r}\n{done.stderr[-2000:]}"
    return done.returncode, json.loads(lines[0]), done.stderr


@pytest.fixture
def ws_dir(tmp_path) -> str:
    """A workspace whose first admin is "alice" (made in this process: the test of the
    headless first start runs the command itself)."""
    from core.accounts import create_account
    from core.workspace import Workspace

    root = str(tmp_path / "ws")
    ws = Workspace.open(root)
    try:
        create_account(ws, "alice", "admin", password=ADMIN_PW)
    finally:
        ws.dispose()
    return root


@pytest.fixture
def one_pair(cxr_lungs_dir, tmp_path) -> Path:
    jpg = sorted(cxr_lungs_dir.glob("*.jpg"))[0]
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(jpg, folder / jpg.name)
    shutil.copy(jpg.with_suffix(".json"), folder / f"{jpg.stem}.json")
    return folder


def _audit(root: str) -> list[tuple[str, str, str]]:
    from core.accounts import audit_rows
    from core.workspace import Workspace

    ws = Workspace.open(root)
    try:
        return [(r.actor, r.action, r.target) for r in reversed(audit_rows(ws))]
    finally:
        ws.dispose()


def _images(root: str) -> int:
    from core.labels.catalog import list_images
    from core.workspace import Workspace
    from db.queries import WorklistFilter

    ws = Workspace.open(root)
    try:
        return len(list_images(ws, WorklistFilter()))
    finally:
        ws.dispose()


def test_the_first_admin_is_made_headless_with_the_password_on_stdin(tmp_path):
    from core.accounts import authenticate
    from core.workspace import Workspace

    root = str(tmp_path / "fresh")
    code, out, _ = _cli("--workspace", root, "users", "add", "alice", "--role", "admin",
                        stdin=f"{ADMIN_PW}\n")  # fmt: skip
    assert code == 0, out
    assert out["added"] == {
        "name": "alice", "role": "admin", "disabled": False, "service": False, "password": True,
        "email": None, "oidc_linked": False, "locked_until": None, "last_login_at": None,
    }  # fmt: skip
    ws = Workspace.open(root)
    try:
        assert authenticate(ws, "alice", ADMIN_PW).role == "admin"
    finally:
        ws.dispose()
    # There is no password flag: argparse itself refuses one.
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "--workspace", root, "users", "add", "x",
         "--role", "admin", "--password", "secret123"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --password" in done.stderr


def test_once_an_admin_exists_adding_needs_as_an_admin_with_its_password(ws_dir):
    code, out, _ = _cli("--workspace", ws_dir, "users", "add", "bob", "--role", "annotator",
                        stdin="bob password\n")  # fmt: skip
    assert code == 2 and "--as NAME users" in out["error"]
    code, out, _ = _cli("--workspace", ws_dir, "--as", "alice", "users", "add", "bob",
                        "--role", "annotator", stdin="wrong password\nbob password\n")  # fmt: skip
    assert code == 2 and out["error"] == "--as alice: Wrong name or password."
    code, out, _ = _cli("--workspace", ws_dir, "--as", "alice", "users", "add", "bob",
                        "--role", "annotator", stdin=f"{ADMIN_PW}\nbob password\n")  # fmt: skip
    assert code == 0 and out["added"]["role"] == "annotator"
    # bob may not add accounts: the service refuses, whatever the CLI was told.
    code, out, _ = _cli("--workspace", ws_dir, "--as", "bob", "users", "add", "eve",
                        "--role", "admin", stdin="bob password\neve password\n")  # fmt: skip
    assert code == 2 and "bob is an annotator" in out["error"]
    code, out, _ = _cli("--workspace", ws_dir, "users", "list")
    assert [a["name"] for a in out["accounts"]] == ["alice", "bob"]
    assert ("alice", "account_created", "bob") in _audit(ws_dir)
    assert ("alice", "login", "") in _audit(ws_dir)


def test_import_needs_as_once_accounts_exist_and_records_the_account(ws_dir, one_pair):
    code, out, _ = _cli("--workspace", ws_dir, "import", str(one_pair))
    assert code == 2 and "--as NAME import" in out["error"]
    code, out, _ = _cli("--workspace", ws_dir, "--as", "alice", "import", str(one_pair),
                        stdin=f"{ADMIN_PW}\n")  # fmt: skip
    assert code == 0 and out["imported"] == 1 and out["annotations"] == 2

    from core.labels.revisions import latest_by_reader
    from core.workspace import Workspace

    ws = Workspace.open(ws_dir)
    try:
        rev = latest_by_reader(ws, 1)["alice"]
    finally:
        ws.dispose()
    assert rev.provenance == "imported from LabelMe by alice"
    assert ("alice", "import", "1 file") in _audit(ws_dir)


def test_a_service_identity_imports_without_a_password_and_an_annotator_cannot(ws_dir, one_pair):
    code, out, _ = _cli("--workspace", ws_dir, "--as", "alice", "users", "add", "importer",
                        "--role", "admin", "--service", stdin=f"{ADMIN_PW}\n")  # fmt: skip
    assert code == 0 and out["added"]["service"] and not out["added"]["password"]
    code, out, _ = _cli("--workspace", ws_dir, "--as", "alice", "users", "add", "bob",
                        "--role", "annotator", stdin=f"{ADMIN_PW}\nbob password\n")  # fmt: skip
    assert code == 0
    code, out, _ = _cli("--workspace", ws_dir, "--as", "bob", "import", str(one_pair),
                        stdin="bob password\n")  # fmt: skip
    assert code == 2 and "bob is an annotator" in out["error"] and "admin" in out["error"]
    assert _images(ws_dir) == 0  # nothing was imported
    code, out, _ = _cli("--workspace", ws_dir, "--as", "importer", "import", str(one_pair))
    assert code == 0 and out["imported"] == 1 and _images(ws_dir) == 1
    assert ("importer", "import", "1 file") in _audit(ws_dir)


def test_disable_enable_set_role_and_reset_password(ws_dir):
    from core.accounts import LoginRefused, authenticate
    from core.workspace import Workspace

    as_alice = ("--workspace", ws_dir, "--as", "alice", "users")
    assert _cli(*as_alice, "add", "bob", "--role", "annotator",
                stdin=f"{ADMIN_PW}\nbob password\n")[0] == 0  # fmt: skip
    code, out, _ = _cli(*as_alice, "set-role", "bob", "reviewer", stdin=f"{ADMIN_PW}\n")
    assert code == 0 and out["account"]["role"] == "reviewer"
    code, out, _ = _cli(*as_alice, "disable", "bob", stdin=f"{ADMIN_PW}\n")
    assert code == 0 and out["account"]["disabled"]
    code, out, _ = _cli(*as_alice, "enable", "bob", stdin=f"{ADMIN_PW}\n")
    assert code == 0 and not out["account"]["disabled"]
    code, out, _ = _cli(*as_alice, "reset-password", "bob", stdin=f"{ADMIN_PW}\nnew bob pw\n")
    assert code == 0
    ws = Workspace.open(ws_dir)
    try:
        assert authenticate(ws, "bob", "new bob pw").role == "reviewer"
        with pytest.raises(LoginRefused):
            authenticate(ws, "bob", "bob password")
    finally:
        ws.dispose()
    changed = [t for a, action, t in _audit(ws_dir) if action == "account_changed"]
    assert changed == ["bob", "bob", "bob", "bob"]
