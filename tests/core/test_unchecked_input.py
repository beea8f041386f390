"""Unchecked input (issue 13): ids from URLs and the command line are checked in core before
any database lookup, so an id no database column can hold is refused with what to type
instead of an OverflowError, and a training size of 0 is refused rather than replaced."""

from __future__ import annotations

import pytest

from core.labels.catalog import MAX_RECORD_ID, find_image, image_info, parse_image_id
from core.tasks.submit import TrainRequest, build_train_config
from core.versions import activate, get_version, register_version
from db.models import ModelVersion

HUGE = "99999999999999999999"  # over 2**64
OVER_INT64 = "9223372036854775808"  # 2**63: the first value SQLite cannot store


def _version() -> ModelVersion:
    return ModelVersion(
        label="lung", arch="unet", encoder="resnet18", image_size=64, settings={},
        data_snapshot={"n_train": 8, "n_val": 2}, history=[], metrics={"dice": 0.5},
        checkpoint_path="models/x/best.pt", device="cpu", duration_s=1.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("42", 42),
        ("007", 7),
        (str(MAX_RECORD_ID), MAX_RECORD_ID),
        (str(MAX_RECORD_ID + 1), None),
        (OVER_INT64, None),
        (HUGE, None),
        ("9" * 5000, None),  # longer than int() accepts from text
        ("²", None),  # "²".isdigit() is True, int("²") fails
        ("١٢", None),  # Arabic-Indic digits: int() would accept them
        ("0", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("", None),
        ("abc", None),
    ],
)
def test_parse_image_id_accepts_only_ascii_digits_in_the_database_range(text, expected):
    assert parse_image_id(text) == expected


@pytest.mark.parametrize("text", [HUGE, OVER_INT64, "²", "-1", "12345"])
def test_find_image_refuses_with_a_plain_message_that_does_not_repeat_the_text(workspace, text):
    with pytest.raises(LookupError) as caught:
        find_image(workspace, text)
    message = str(caught.value)
    assert "image" in message and text not in message


def test_image_lookups_refuse_ids_out_of_range_with_key_error_not_overflow(workspace):
    for image_id in (int(HUGE), int(OVER_INT64), MAX_RECORD_ID + 1, 0, -1):
        with pytest.raises(KeyError, match="not in this workspace"):
            image_info(workspace, image_id)


@pytest.mark.parametrize("ref", [HUGE, int(HUGE), OVER_INT64, "²", "-1", -1, 0, "1.5", "best"])
def test_get_version_refuses_what_is_not_a_version_id_and_names_the_valid_form(workspace, ref):
    register_version(workspace, _version(), "always")
    with pytest.raises(LookupError, match="whole numbers from 1 to 2,147,483,647"):
        get_version(workspace, ref)


def test_activate_refuses_a_huge_id_and_real_ids_still_work(workspace):
    v = register_version(workspace, _version(), "always")
    with pytest.raises(LookupError, match="neither a version id"):
        activate(workspace, int(HUGE))
    assert activate(workspace, v.id).id == v.id
    assert get_version(workspace, v.id).id == get_version(workspace, str(v.id)).id == v.id
    assert get_version(workspace, "active").id == v.id
    with pytest.raises(LookupError, match="does not exist"):
        get_version(workspace, str(MAX_RECORD_ID))


def test_fine_tuning_from_a_huge_version_id_is_a_lookup_error(workspace):
    with pytest.raises(LookupError, match="neither a version id"):
        build_train_config(workspace, TrainRequest(from_version=int(HUGE)))


def test_build_train_config_refuses_size_0_instead_of_training_at_the_default(workspace):
    with pytest.raises(ValueError, match="size must be a multiple of 32"):
        build_train_config(workspace, TrainRequest(size=0))
    # What TrainConfig already refused stays refused, and no size given is still the default.
    with pytest.raises(ValueError, match="size must be a multiple of 32"):
        build_train_config(workspace, TrainRequest(size=-32))
    for epochs in (0, -1):
        with pytest.raises(ValueError, match="epochs and batch_size must be at least 1"):
            build_train_config(workspace, TrainRequest(epochs=epochs))
    assert build_train_config(workspace, TrainRequest()).size == 256


def test_size_0_is_refused_when_fine_tuning_too(workspace):
    parent = register_version(workspace, _version(), "always")
    with pytest.raises(ValueError, match="size must be a multiple of 32"):
        build_train_config(workspace, TrainRequest(from_version=parent.id, size=0))
    assert build_train_config(workspace, TrainRequest(from_version=parent.id)).size == 64
