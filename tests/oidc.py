"""A real OpenID Connect provider process for the single sign-on tests: `oidc-provider-mock`
(PyPI; the test extra), started on a free port of 127.0.0.1 with predefined users. Its login
page asks for a subject and an "Authorize" click, like a hospital's sign-in page asks for a
password; the app under test talks to it over HTTP like to any provider.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLIENT_ID = "pneumolab"


@contextmanager
def oidc_provider(port: int, log: Path, users: list[dict]) -> Iterator[str]:
    """Run the provider with `users` (claims, each with "sub"); yields its issuer URL."""
    cmd = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--host", "127.0.0.1"]
    for claims in users:
        cmd += ["--user-claims", json.dumps(claims)]
    proc = subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(issuer, proc, log)
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(issuer: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the OpenID provider exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the OpenID provider did not start in {timeout}s:\n{log.read_text()}")


def secrets_toml(app_url: str, issuer: str) -> str:
    """The app's .streamlit/secrets.toml for single sign-on through `issuer` (README)."""
    return (
        "[auth]\n"
        f'redirect_uri = "{app_url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        f'client_id = "{CLIENT_ID}"\n'
        f'client_secret = "{secrets.token_urlsafe(16)}"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
    )
