"""The annotator's pure JavaScript modules (viewport maths, hit testing, the shape-editing
state machine, window/level) are unit-tested with `node --test tests/js/`; this runs them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_node_unit_tests_of_the_annotator_modules_pass():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: `apt-get install -y nodejs` (.ci/run does this)", False)
    result = subprocess.run(
        [node, "--test", "tests/js/"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    summary = [line for line in result.stdout.splitlines() if line.startswith("# ")]
    assert result.returncode == 0, f"node --test failed:\n{result.stdout}\n{result.stderr}"
    assert any(line.startswith("# pass ") and line != "# pass 0" for line in summary), summary
