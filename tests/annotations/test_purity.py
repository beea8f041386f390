"""`annotations` stays pure: importing all of it pulls in no torch, SQLAlchemy or Streamlit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib, json, pkgutil, sys
import annotations
names = [m.name for m in pkgutil.iter_modules(annotations.__path__, "annotations.")]
for name in names:
    importlib.import_module(name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "sqlalchemy", "streamlit"})
print(json.dumps({"modules": names, "heavy": heavy}))
"""


def test_importing_every_annotations_module_pulls_no_torch_sqlalchemy_or_streamlit():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {"annotations.shapes", "annotations.rasterise", "annotations.labelme_io"}
    assert expected | {"annotations.coco"} <= set(report["modules"])
    assert report["heavy"] == []
