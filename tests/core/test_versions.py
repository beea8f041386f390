"""Model registry: one active version, activate/rollback, immutability, the if_better rule."""

from __future__ import annotations

import pytest

from core.versions import (
    ImmutableVersionError,
    activate,
    active_version,
    get_version,
    list_versions,
    register_version,
)
from db.models import ModelVersion


def _version(dice: float, label: str = "lung", **fields) -> ModelVersion:
    metrics = {"dice": dice, **fields.pop("metrics", {})}
    return ModelVersion(
        label=label, arch="unet", encoder="resnet18", image_size=64, settings={},
        data_snapshot={"n_train": 8, "n_val": 2}, history=[], metrics=metrics,
        checkpoint_path="models/x/best.pt", device="cpu", duration_s=1.0, **fields,
    )  # fmt: skip


def _active_ids(ws) -> list[int]:
    return [v.id for v in list_versions(ws) if v.is_active]


def test_first_version_becomes_active_even_when_told_never(workspace):
    v1 = register_version(workspace, _version(0.5), "never")
    assert v1.is_active and _active_ids(workspace) == [v1.id]


def test_if_better_activates_only_a_better_version_of_the_same_label(workspace):
    v1 = register_version(workspace, _version(0.80), "if_better")
    worse = register_version(workspace, _version(0.70), "if_better")
    assert not worse.is_active and _active_ids(workspace) == [v1.id]
    other_label = register_version(workspace, _version(0.99, "pneumonia"), "if_better")
    assert not other_label.is_active
    better = register_version(workspace, _version(0.85), "if_better")
    assert better.is_active and _active_ids(workspace) == [better.id]


def test_if_better_holds_a_fine_tune_to_its_parent_on_the_same_images(workspace):
    # The parent's stored Dice was measured on other images; a fine-tune (an update) measured
    # the parent on its own validation images before training, and is held to that.
    parent = register_version(workspace, _version(0.95), "always")
    lower_but_better = _version(0.90, parent_version_id=parent.id, metrics={"parent_dice": 0.85})
    assert register_version(workspace, lower_but_better, "if_better").is_active
    child = active_version(workspace)
    higher_but_worse = _version(0.97, parent_version_id=child.id, metrics={"parent_dice": 0.98})
    assert not register_version(workspace, higher_but_worse, "if_better").is_active
    assert _active_ids(workspace) == [child.id]


def test_always_and_never(workspace):
    v1 = register_version(workspace, _version(0.9), "always")
    v2 = register_version(workspace, _version(0.1), "always")
    v3 = register_version(workspace, _version(0.99), "never")
    assert _active_ids(workspace) == [v2.id]
    assert not v3.is_active and get_version(workspace, v1.id).val_dice == 0.9


def test_activate_and_rollback_keep_exactly_one_active(workspace):
    v1 = register_version(workspace, _version(0.8), "always")
    v2 = register_version(workspace, _version(0.9), "always")
    assert activate(workspace, v1.id).is_active  # rollback
    assert _active_ids(workspace) == [v1.id]
    assert get_version(workspace, "active").id == v1.id
    activate(workspace, v2.id)
    assert active_version(workspace).id == v2.id and _active_ids(workspace) == [v2.id]


def test_versions_cannot_be_edited(workspace):
    v1 = register_version(workspace, _version(0.8), "always")
    with (
        pytest.raises(ImmutableVersionError, match="immutable.*metrics"),
        workspace.sessions.begin() as s,
    ):
        s.get(ModelVersion, v1.id).metrics = {"dice": 0.99}
    assert get_version(workspace, v1.id).metrics == {"dice": 0.8}


def test_unknown_versions_say_what_to_do(workspace):
    with pytest.raises(LookupError, match="no model version is active"):
        get_version(workspace, "active")
    with pytest.raises(LookupError, match="pneumolab models"):
        get_version(workspace, 42)
    with pytest.raises(LookupError, match="neither a version id nor 'active'"):
        get_version(workspace, "best")
    with pytest.raises(LookupError, match="does not exist"):
        activate(workspace, 42)
