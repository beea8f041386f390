"""Imports point one way: `annotations` and `db` load without torch or streamlit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys, pkgutil, importlib
import annotations, db
for pkg in (annotations, db):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if ".migrations" not in m.name:
            importlib.import_module(m.name)
heavy = sorted({n.split(".")[0] for n in sys.modules} & {"torch", "streamlit", "torchvision"})
print(json.dumps({"heavy": heavy, "loaded": sorted(n for n in sys.modules if n.startswith(("annotations.", "db.")))}))
"""


def test_annotations_and_db_import_without_torch_or_streamlit():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["heavy"] == []
    assert "db.models" in out["loaded"] and "db.queries" in out["loaded"]
    assert any(n.startswith("annotations.") for n in out["loaded"])
