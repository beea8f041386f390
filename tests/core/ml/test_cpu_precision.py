"""A run says what precision it trained in: mixed precision on CUDA only, float32 on CPU
whatever `amp` says (bfloat16 on CPU was faster but its Dice spread from run to run)."""

from __future__ import annotations

import torch

from core.ml.dataset import patient_split
from core.ml.device import autocast_dtype
from core.ml.progress import NullProgress
from core.ml.training.config import TrainConfig
from core.ml.training.loop import train_model
from core.ml.training.synthetic import synthetic_items

FAST = {"arch": "unet", "encoder": "resnet18", "size": 64, "device": "cpu", "num_workers": 0}


class Log(NullProgress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_log(self, message: str) -> None:
        self.lines.append(message)


def test_autocast_is_for_cuda_only():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, enabled=True) is None
    assert autocast_dtype(cpu, enabled=False) is None
    assert autocast_dtype(torch.device("cuda"), enabled=False) is None


def test_a_cpu_run_reports_and_logs_float32(tmp_path, torch_one_thread):
    items = synthetic_items(24, seed=3)
    train, val = patient_split(items, 0.25, seed=0)
    config = TrainConfig(**FAST, epochs=2, batch_size=6, lr=3e-3, warmup_epochs=0, amp=True)
    log = Log()
    result = train_model(config, train, val, tmp_path / "run", log)
    assert result.precision == "float32"
    start = [line for line in log.lines if line.startswith("Training ")]
    assert len(start) == 1 and " on cpu in float32: " in start[0], log.lines
