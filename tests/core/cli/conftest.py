"""The pneumolab command run as a user runs it: a fresh process, one JSON line out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _run_cli(*args: str) -> tuple[int, dict, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {done.stdout!r}\n{done.stderr[-2000:]}"
    return done.returncode, json.loads(lines[0]), done.stderr


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., tuple[int, dict, str]]:
    """run_cli(*args) -> (exit status, the one JSON line it printed, stderr)."""
    return _run_cli
