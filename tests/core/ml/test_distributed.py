"""A 2-process distributed data-parallel run on CPU (gloo), launched by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.ml.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[3]


def test_two_process_gloo_run_completes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "core.ml.training.ddp_smoke", "--out", str(tmp_path),
        "--epochs", "2", "--images", "16",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1, done.stdout  # only rank 0 reports
    result = lines[0]
    assert result["world_size"] == 2
    assert result["device"] == "cpu x2 processes"
    _, meta = read_checkpoint(result["best_checkpoint"])
    assert meta.epoch == result["best_epoch"]
    assert 0.0 <= result["val_dice"] <= 1.0
