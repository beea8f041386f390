"""A 2-process distributed data-parallel run on CPU (gloo), launched by torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.ml.checkpoint import load_model
from core.ml.dataset import ResizedCache, patient_split
from core.ml.inference import predict_probabilities
from core.ml.metrics import dataset_scores
from core.ml.training.synthetic import synthetic_items

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
    model, _, meta = load_model(result["best_checkpoint"])
    assert meta.epoch == result["best_epoch"]
    # The Dice gathered from both ranks' validation shards is the Dice of rank 0's checkpoint
    # over the whole validation set (ddp_smoke's split of 16 images), scored in one process.
    _, val = patient_split(synthetic_items(16, negative_every=4), 0.25, seed=0)
    cache = ResizedCache(meta.size)
    pairs = [cache.get(item) for item in val]
    images = [image.astype(np.float32) / 255 for image, _ in pairs]
    probs = predict_probabilities(model, images, meta.size, "cpu", 4, meta.normalisation)
    scores = dataset_scores([p > 0.5 for p in probs], [mask for _, mask in pairs])
    assert scores["dice"] == pytest.approx(result["val_dice"], abs=1e-6)
