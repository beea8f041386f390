"""A training request is checked and turned into its one TrainConfig before a job is queued:
a bad setting fails at once with what to change, and nothing is queued."""

from __future__ import annotations

import pytest

from core.jobs import list_jobs
from core.tasks.submit import TrainRequest, build_train_config, submit_training


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"optimizer": "sgd"}, "optimizer 'sgd'"),
        ({"val_fraction": 1.5}, "val_fraction must be in [0, 1)"),
        ({"early_stopping_patience": 0}, "early_stopping_patience must be >= 1"),
        ({"loss": "l2"}, "loss 'l2'"),
        ({"arch": "pspnet"}, "architecture 'pspnet'"),
        ({"size": 100}, "multiple of 32"),
        ({"epochs": 0}, "epochs and batch_size must be at least 1"),
        ({"activate": "sometimes"}, "activate must be one of never, always, if_better"),
        ({"device": "tpu"}, "device 'tpu'"),
    ],
)
def test_a_bad_setting_is_refused_at_submission_and_nothing_is_queued(workspace, change, message):
    with pytest.raises(ValueError) as refused:
        submit_training(workspace, TrainRequest(**change))
    assert message in str(refused.value)
    assert list_jobs(workspace) == []


def test_the_config_carries_every_setting_of_the_request(workspace):
    req = TrainRequest(
        arch="deeplabv3plus",
        encoder="resnet18",
        size=128,
        epochs=3,
        batch_size=4,
        lr=1e-3,
        optimizer="adamw",
        loss="hybrid",
        val_fraction=0.3,
        seed=7,
        device="cpu",
        early_stopping_patience=2,
        augment=False,
    )
    config = build_train_config(workspace, req)
    got = {k: getattr(config, k) for k in ("arch", "encoder", "size", "epochs", "batch_size")}
    assert got == {"arch": "deeplabv3plus", "encoder": "resnet18", "size": 128, "epochs": 3,
                   "batch_size": 4}  # fmt: skip
    assert (config.lr, config.optimizer, config.loss) == (1e-3, "adamw", "hybrid")
    assert (config.val_fraction, config.seed, config.device) == (0.3, 7, "cpu")
    assert (config.early_stopping_patience, config.augment) == (2, False)
    assert config.init_checkpoint is None


def test_defaults_are_unet_resnet34_at_256_without_a_parent(workspace):
    config = build_train_config(workspace, TrainRequest())
    assert (config.arch, config.encoder, config.size) == ("unet", "resnet34", 256)


def test_fine_tuning_an_unknown_version_is_refused(workspace):
    with pytest.raises(LookupError):
        submit_training(workspace, TrainRequest(from_version=42))
    assert list_jobs(workspace) == []
