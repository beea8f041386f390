"""Department mode's servers: Debian's redis-server on a free port (a temp folder, no
persistence), started once per test session, next to the PostgreSQL server of
tests/db/conftest.py (the job processes and `reap` are tests/conftest.py's). Skipped only
where the server programs are not installed (.ci/run installs them)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def redis_url(free_port, tmp_path_factory) -> Iterator[str]:
    """URL of a throwaway redis-server (database 0); every workspace uses keys of its own."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server to run this")
    import redis

    folder, port = tmp_path_factory.mktemp("redis"), free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--logfile", str(folder / "log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "log").read_text() if (folder / "log").exists() else ""
                proc.kill()
                pytest.fail(f"redis-server did not start: {proc.stderr.read()!r} {log[-2000:]}")
            time.sleep(0.05)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
