"""Autosaved drafts on the server: kept per reader and image apart from revisions, replaced
by the newest, gone after a discard; a bad draft is refused with nothing stored."""

from __future__ import annotations

import pytest

from core.labels.drafts import DraftRefused, discard_draft, load_draft, store_draft
from core.labels.readers import add_reader
from core.labels.revisions import latest_revision

BOX = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [90, 90]]}


def test_store_load_replace_discard(imported_workspace):
    ws = imported_workspace(1, labelme=False)
    add_reader(ws, "ann")
    image_id = 1
    assert load_draft(ws, image_id, "ann") is None
    store_draft(ws, image_id, "ann", {"shapes": [BOX], "finding": None})
    store_draft(ws, image_id, "ann", {"shapes": [BOX, BOX], "finding": "pneumonia"})
    assert load_draft(ws, image_id, "ann") == {"shapes": [BOX, BOX], "finding": "pneumonia"}
    assert load_draft(ws, image_id, "reader") is None  # another reader's draft is their own
    assert latest_revision(ws, image_id, "ann") is None  # a draft is not a revision
    discard_draft(ws, image_id, "ann")
    assert load_draft(ws, image_id, "ann") is None


def test_unknown_image_or_reader_and_huge_drafts_are_refused(imported_workspace):
    ws = imported_workspace(1, labelme=False)
    with pytest.raises(DraftRefused, match="not in this workspace"):
        store_draft(ws, 999, "reader", {"shapes": []})
    with pytest.raises(DraftRefused, match="no reader"):
        store_draft(ws, 1, "nobody", {"shapes": []})
    with pytest.raises(DraftRefused, match="larger than"):
        store_draft(ws, 1, "reader", {"shapes": [{"points": [[0, 0]] * 800_000}]})
    assert load_draft(ws, 1, "reader") is None


def test_drafts_survive_a_reopen_and_an_annotator_without_the_role_keeps_none(
    imported_workspace,
):
    """A draft is a row of its own (migration 0007), so it outlives the process (an app
    restart); once accounts exist, an account that may not label cannot store or discard."""
    from core.accounts import PermissionDenied, create_account, set_disabled

    ws = imported_workspace(1, labelme=False)
    create_account(ws, "admin", "admin", password="correct horse battery staple")
    create_account(ws, "ann", "annotator", password="another long passphrase", by="admin")
    store_draft(ws, 1, "ann", {"shapes": [BOX], "finding": None})
    from core.workspace import Workspace

    again = Workspace.open(ws.root)  # what an app restart opens
    try:
        assert load_draft(again, 1, "ann") == {"shapes": [BOX], "finding": None}
    finally:
        again.dispose()
    set_disabled(ws, "ann", True, by="admin")
    with pytest.raises(PermissionDenied):
        store_draft(ws, 1, "ann", {"shapes": []})
    with pytest.raises(PermissionDenied):
        discard_draft(ws, 1, "ann")
    assert load_draft(ws, 1, "ann") == {"shapes": [BOX], "finding": None}
