"""The conflict rule of annotation saves: two tabs of one reader, nothing lost, newest wins."""

from __future__ import annotations

import pytest

from core.labels.revisions import latest_revision, revision_history, save_revision

POLY = {"label": "pneumonia", "shape_type": "polygon", "points": [[10, 10], [60, 12], [40, 50]]}
BOX = {"label": "lung", "shape_type": "rectangle", "points": [[5, 5], [80, 90]]}


@pytest.fixture
def image_id(workspace, import_real_images) -> int:
    (image,) = import_real_images(workspace, 1).imported
    return image


def test_second_tab_is_told_of_the_conflict_and_both_revisions_are_kept(workspace, image_id):
    # Both tabs opened the image before any save: based on nothing.
    first = save_revision(workspace, image_id, "reader", [POLY], based_on=None)
    assert first.conflict is None and first.revision.revision == 1
    second = save_revision(workspace, image_id, "reader", [BOX], based_on=None)
    assert second.conflict is not None
    assert second.conflict.revision == 1 and second.conflict.shapes[0]["label"] == "pneumonia"
    assert second.revision.revision == 2
    history = revision_history(workspace, image_id, "reader")
    assert [r.revision for r in history] == [2, 1]  # nothing lost
    assert latest_revision(workspace, image_id, "reader").shapes[0]["shape_type"] == "rectangle"


def test_choosing_the_other_version_is_a_new_revision(workspace, image_id):
    save_revision(workspace, image_id, "reader", [POLY], based_on=None)
    mine = save_revision(workspace, image_id, "reader", [BOX], based_on=None)
    theirs = mine.conflict
    chosen = save_revision(
        workspace, image_id, "reader", theirs.shapes, based_on=mine.revision.revision
    )
    assert chosen.conflict is None and chosen.revision.revision == 3
    assert latest_revision(workspace, image_id, "reader").shapes == theirs.shapes
    assert len(revision_history(workspace, image_id, "reader")) == 3


def test_saving_on_top_of_the_newest_revision_is_no_conflict(workspace, image_id):
    one = save_revision(workspace, image_id, "reader", [POLY])
    two = save_revision(workspace, image_id, "reader", [POLY, BOX], based_on=one.revision.revision)
    assert two.conflict is None and two.revision.revision == 2


def test_other_readers_never_conflict(workspace, image_id):
    from core.labels.readers import add_reader

    add_reader(workspace, "alice")
    save_revision(workspace, image_id, "reader", [POLY])
    other = save_revision(workspace, image_id, "alice", [BOX], based_on=None)
    assert other.conflict is None and other.revision.revision == 1


@pytest.mark.parametrize(
    ("shape", "rule"),
    [
        ({"label": "lung", "shape_type": "polygon", "points": [[1, 1], [5, 5]]}, "at least 3"),
        ({"label": "lung", "shape_type": "rectangle", "points": [[5, 5], [5, 40]]}, "zero area"),
        (
            {"label": "lung", "shape_type": "polygon", "points": [[-9, -9], [-5, -9], [-7, -3]]},
            "distinct points inside the image",
        ),
    ],
)
def test_bad_shapes_store_nothing(workspace, image_id, shape, rule):
    before = revision_history(workspace, image_id, "reader")
    with pytest.raises(ValueError, match=rule):
        save_revision(workspace, image_id, "reader", [POLY, shape])
    assert revision_history(workspace, image_id, "reader") == before
