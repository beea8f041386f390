"""Annotate page (AppTest): findings, bad shapes, the two-tab conflict, unsaved-changes guard.

The canvas itself only works in a browser (tests/e2e/test_annotate_browser.py); here the
reader's draft is set the way the canvas would leave it, and the page's buttons are used.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.labels.revisions import latest_finding, latest_revision, revision_history, save_revision
from core.workspace import Workspace

POLY = {
    "label": "pneumonia",
    "shape_type": "polygon",
    "points": [[100, 100], [300, 120], [200, 300]],
}


@pytest.fixture
def ws(app_env, imported_workspace) -> Workspace:
    return imported_workspace(2, root=app_env)


def open_annotate(open_app) -> tuple[AppTest, int]:
    at = open_app("annotate", timeout=60, navigate=True)
    assert not at.exception, at.exception
    return at, at.session_state["annotate_image_id"]


def draft(at: AppTest, image_id: int) -> dict:
    return at.session_state["annotate_drafts"][f"reader\x1f{image_id}"]


def click(at: AppTest, key: str) -> AppTest:
    return at.button(key=key).click().run()


def geometry(shapes: list[dict]) -> list[tuple]:
    return [
        (s["label"], s["shape_type"], [list(map(float, p)) for p in s["points"]]) for s in shapes
    ]


def texts(elements) -> str:
    return " ".join(e.value for e in elements)


def test_no_images_says_what_to_do(tmp_path, point_app, open_app):
    point_app(tmp_path / "empty")
    at = open_app("annotate", timeout=60, navigate=True)
    assert "Import X-rays first" in texts(at.info)


def test_reviewed_no_finding_records_an_explicit_negative(ws, open_app):
    at, image_id = open_annotate(open_app)
    click(at, "annotate_save")
    assert "Nothing to save" in texts(at.error)
    assert latest_revision(ws, image_id, "reader") is None

    finding = next(r for r in at.radio if r.label == "Image-level finding")
    finding.set_value("reviewed_no_finding").run()
    click(at, "annotate_save")
    assert "Saved revision 1 (0 shape(s))" in texts(at.success)
    assert latest_finding(ws, image_id, "reader") == "reviewed_no_finding"
    assert latest_revision(ws, image_id, "reader").shapes == []


def test_reviewed_no_finding_with_shapes_is_refused(ws, open_app):
    at, image_id = open_annotate(open_app)
    draft(at, image_id)["shapes"] = [POLY]
    next(r for r in at.radio if r.label == "Image-level finding").set_value(
        "reviewed_no_finding"
    ).run()
    click(at, "annotate_save")
    assert "images without shapes" in texts(at.error)
    assert latest_revision(ws, image_id, "reader") is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"label": "lung", "shape_type": "polygon", "points": [[1, 1], [50, 50]]},
            "at least 3 points",
        ),
        ({"label": "lung", "shape_type": "rectangle", "points": [[40, 5], [40, 90]]}, "zero area"),
        (
            {"label": "lung", "shape_type": "polygon", "points": [[-90, -9], [-50, -9], [-70, -3]]},
            "inside the image",
        ),
    ],
)
def test_bad_shapes_get_a_clear_message_and_nothing_is_saved(ws, open_app, bad, message):
    at, image_id = open_annotate(open_app)
    draft(at, image_id)["shapes"] = [POLY, bad]
    click(at, "annotate_save")
    error = texts(at.error)
    assert "Not saved" in error and "shape #1" in error and message in error
    assert "Nothing was stored" in error
    assert latest_revision(ws, image_id, "reader") is None
    assert draft(at, image_id)["shapes"] == [POLY, bad]  # the reader's work is still there


def test_second_tab_save_reports_conflict_keeps_both_and_lets_the_reader_choose(ws, open_app):
    at, image_id = open_annotate(open_app)
    # Another tab of the same reader saves first.
    other = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [90, 90]]}
    save_revision(ws, image_id, "reader", [other], based_on=None)
    draft(at, image_id)["shapes"] = [POLY]
    click(at, "annotate_save")
    warning = texts(at.warning)
    assert "Saved with a conflict" in warning and "revision 1" in warning
    assert "Yours is revision 2" in warning
    assert [r.revision for r in revision_history(ws, image_id, "reader")] == [2, 1]
    assert latest_revision(ws, image_id, "reader").shapes[0]["shape_type"] == "polygon"

    click(at, "annotate_conflict_theirs")
    latest = latest_revision(ws, image_id, "reader")
    assert latest.revision == 3 and latest.shapes[0]["shape_type"] == "rectangle"
    assert "Saved with a conflict" not in texts(at.warning)


def test_leaving_with_unsaved_changes_warns(ws, open_app):
    at, image_id = open_annotate(open_app)
    draft(at, image_id)["shapes"] = [POLY]
    click(at, "annotate_skip")
    assert "unsaved changes" in texts(at.warning)
    assert at.session_state["annotate_image_id"] == image_id
    click(at, "annotate_pending_stay")
    assert at.session_state["annotate_image_id"] == image_id
    assert draft(at, image_id)["shapes"] == [POLY]

    click(at, "annotate_skip")
    click(at, "annotate_pending_discard")
    assert at.session_state["annotate_image_id"] != image_id
    assert latest_revision(ws, image_id, "reader") is None


def test_save_and_next_moves_in_worklist_order(ws, open_app):
    at, image_id = open_annotate(open_app)
    draft(at, image_id)["shapes"] = [POLY]
    click(at, "annotate_save_next")
    assert latest_revision(ws, image_id, "reader").shapes[0]["label"] == "pneumonia"
    second = at.session_state["annotate_image_id"]
    assert second != image_id
    click(at, "annotate_prev")
    assert at.session_state["annotate_image_id"] == image_id


def test_undo_and_redo_reach_across_deletes_zoom_clear_and_save(ws, open_app):
    """The canvas's own undo ends when it is remounted; the page's undo/redo go through
    every change to the image's shapes: a delete from the list, a zoom, a save, a clear."""
    box = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [90, 90]]}
    at, image_id = open_annotate(open_app)
    assert at.button(key="annotate_undo").disabled and at.button(key="annotate_redo").disabled
    draft(at, image_id)["shapes"] = [POLY, box]  # as the canvas leaves two drawn shapes
    at.run()
    epoch = draft(at, image_id)["epoch"]
    click(at, f"annotate_shape_del_{epoch}_0")
    assert draft(at, image_id)["shapes"] == [box]

    next(r for r in at.radio if r.label == "Zoom").set_value("2x").run()
    click(at, "annotate_undo")
    assert draft(at, image_id)["shapes"] == [POLY, box], "undo after a zoom lost the delete"
    assert draft(at, image_id)["loaded"] == [POLY, box], "the canvas was not redrawn"
    click(at, "annotate_redo")
    assert draft(at, image_id)["shapes"] == [box]
    assert at.button(key="annotate_redo").disabled
    click(at, "annotate_undo")

    click(at, "annotate_save")
    assert geometry(latest_revision(ws, image_id, "reader").shapes) == geometry([POLY, box])
    click(at, "annotate_clear")
    assert draft(at, image_id)["shapes"] == []
    assert "Unsaved changes" in texts(at.caption)
    click(at, "annotate_undo")
    assert geometry(draft(at, image_id)["shapes"]) == geometry([POLY, box])
    assert "All changes saved" in texts(at.caption)


# --- deep links `/annotate?image=...` (issue 13: unchecked input) -----------------------------


def open_annotate_link(open_app, image: str) -> AppTest:
    """The Annotate page opened from the link `/annotate?image=<image>`, in a fresh session."""
    return open_app("annotate", timeout=60, query={"image": image})


@pytest.mark.parametrize(
    "link", ["99999999999999999999", "9223372036854775808", "²", "-1", "12abc", "12345"]
)
def test_a_bad_image_link_shows_a_plain_message_and_the_first_image(ws, open_app, link):
    from core.labels.catalog import WorklistFilter, image_info, worklist_ids

    at = open_annotate_link(open_app, link)
    assert not at.exception, at.exception
    warning = texts(at.warning)
    assert "showing the first image of the worklist" in warning
    assert "Traceback" not in warning and link not in warning
    first = worklist_ids(ws, WorklistFilter())[0]
    assert at.session_state["annotate_image_id"] == first
    assert at.query_params["image"] == str(first)
    captions = texts(at.caption)
    assert image_info(ws, first).display_name in captions and "image 1 of 2" in captions
    # The link's text is kept nowhere in the session, so it cannot come back on a rerun.
    assert at.session_state["annotate_query_seen"] == str(first)
    assert all(link not in text for _kind, text in at.session_state["annotate_flash"])

    at.run()
    assert not at.exception, at.exception
    assert at.session_state["annotate_image_id"] == first
    assert "showing the first image of the worklist" in texts(at.warning)


def test_a_good_image_link_opens_that_image(ws, open_app):
    from core.labels.catalog import WorklistFilter, worklist_ids

    second = worklist_ids(ws, WorklistFilter())[1]
    at = open_annotate_link(open_app, str(second))
    assert not at.exception, at.exception
    assert at.session_state["annotate_image_id"] == second
    assert "image 2 of 2" in texts(at.caption) and not at.warning


def test_another_readers_name_is_shown_as_text_never_as_markup(ws, open_app):
    from core.labels.readers import add_reader

    at, image_id = open_annotate(open_app)
    add_reader(ws, "<img src=x onerror=alert(1)> *Dr*")
    box = {"label": "lung", "shape_type": "rectangle", "points": [[5, 5], [40, 40]]}
    save_revision(ws, image_id, "<img src=x onerror=alert(1)> *Dr*", [box])
    at = at.run()
    assert not at.exception
    line = next(m.value for m in at.markdown if "other readers, read-only" in m.value)
    assert r"&lt;img src=x onerror=alert(1)&gt; \*Dr\* (1)" in line and "<img" not in line
