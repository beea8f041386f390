"""Annotate page: what the annotator is sent, and what the server does with its events.

The drawing itself only runs in a browser (tests/e2e/test_annotate_browser.py). Here the page
runs in AppTest (what it sends the component: image, neighbours, labels, start state), and
the events the browser sends (autosave, save, move) go through the same `handle_event` the
page's callback calls, against a real workspace.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.labels.catalog import WorklistFilter, worklist_ids
from core.labels.drafts import load_draft
from core.labels.readers import list_labels
from core.labels.revisions import latest_finding, latest_revision, revision_history, save_revision
from core.workspace import Workspace

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
from components.annotate_state import handle_event, model_marks, start_state  # noqa: E402

READER = "reader"
POLY = {
    "label": "pneumonia",
    "shape_type": "polygon",
    "points": [[100, 100], [300, 120], [200, 300]],
}
BOX = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [90, 90]]}


@pytest.fixture
def ws(app_env, imported_workspace) -> Workspace:
    return imported_workspace(2, root=app_env)


def open_annotate(open_app, **kw) -> AppTest:
    at = open_app("annotate", timeout=60, navigate=True, **kw)
    assert not at.exception, at.exception
    return at


def sent(at: AppTest) -> dict:
    """The data the page sent the annotator component in its last run."""

    def walk(node):
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    (component,) = [n for n in walk(at._tree) if getattr(n, "type", None) == "bidi_component"]
    return json.loads(component.proto.json)


def texts(elements) -> str:
    return " ".join(e.value for e in elements)


class Browser:
    """Sends events as the annotator does: numbered, one after another."""

    def __init__(self, ws: Workspace, reader: str = READER, tab: str = "tab-a") -> None:
        self.ws, self.reader, self.tab, self.seq = ws, reader, tab, 0
        self.order = worklist_ids(ws, WorklistFilter())

    def send(self, kind: str, image_id: int, **payload) -> dict:
        self.seq += 1
        event = {"kind": kind, "seq": self.seq, "tab": self.tab, "image_id": image_id, **payload}
        handled = handle_event(self.ws, self.reader, event, self.order)
        assert handled["seq"] == self.seq
        return handled

    def draft(self, image_id: int, shapes, finding=None, base=None, **kw) -> dict:
        draft = {"shapes": shapes, "finding": finding, "base_revision": base, "time": 1_000,
                 "tab": self.tab}  # fmt: skip
        return self.send("draft", image_id, change=1, draft=draft, **kw)

    def save(self, image_id: int, shapes, finding=None, base=None, **kw) -> dict:
        draft = {"shapes": shapes, "finding": finding, "base_revision": base, "tab": self.tab}
        return self.send(
            "save", image_id, shapes=shapes, finding=finding, base_revision=base, draft=draft,
            changed=True, **kw,
        )  # fmt: skip


def test_no_images_says_what_to_do(tmp_path, point_app, open_app):
    point_app(tmp_path / "empty")
    at = open_app("annotate", timeout=60, navigate=True)
    assert "Import X-rays first" in texts(at.info)


def test_the_page_sends_the_image_its_neighbour_labels_and_the_saved_state(ws, open_app):
    first, second = worklist_ids(ws, WorklistFilter())
    save_revision(ws, first, READER, [POLY])
    at = open_annotate(open_app)
    data = sent(at)
    image = data["image"]
    assert image["id"] == first and image["url"]
    assert image["start"]["source"] == "revision" and image["start"]["base_revision"] == 1
    assert image["start"]["shapes"][0]["points"] == POLY["points"]
    assert "image 1 of 2" in image["caption"] and "your revision 1" in image["caption"]
    assert set(image["windows"]) >= {"auto", "lung", "soft tissue", "bone"}
    assert data["nav"] == {"prev": False, "next": True}
    assert "pneumonia" in [lb["name"] for lb in data["labels"]]
    assert "reviewed_no_finding" in [k for k, _ in data["findings"]]
    # The neighbour is prepared in the background and sent once ready.
    for _ in range(50):
        if data["next"] is not None:
            break
        at.run()
        data = sent(at)
    assert data["next"]["id"] == second and data["next"]["start"]["source"] == "none"


def test_autosaved_draft_is_restored_in_a_new_session_and_a_save_ends_it(ws, open_app):
    image_id = worklist_ids(ws, WorklistFilter())[0]
    browser = Browser(ws)
    assert browser.draft(image_id, [POLY, BOX], finding="pneumonia")["ok"]
    assert load_draft(ws, image_id, READER)["shapes"] == [POLY, BOX]
    # A reload, a closed tab or an app restart: a new session opens the draft.
    start = sent(open_annotate(open_app))["image"]["start"]
    assert start["source"] == "draft" and start["shapes"] == [POLY, BOX]
    assert start["finding"] == "pneumonia" and start["saved_shapes"] == []
    handled = browser.save(image_id, [POLY, BOX], finding="pneumonia")
    assert handled["ok"] and handled["revision"] == 1
    assert handled["message"] == "Saved revision 1 (2 shape(s))."
    assert load_draft(ws, image_id, READER) is None
    assert latest_finding(ws, image_id, READER) == "pneumonia"
    start = start_state(ws, image_id, READER)
    assert start["source"] == "revision" and len(start["shapes"]) == 2
    # Undone back to what is saved: the draft is dropped, not kept.
    browser.draft(image_id, [POLY], base=1)
    assert load_draft(ws, image_id, READER) is not None
    browser.draft(image_id, [POLY, BOX], base=1, clean=True)
    assert load_draft(ws, image_id, READER) is None


def test_bad_shapes_get_a_clear_message_nothing_is_saved_and_the_draft_stays(ws):
    image_id = worklist_ids(ws, WorklistFilter())[0]
    for bad, rule in [
        ({"label": "lung", "shape_type": "polygon", "points": [[1, 1], [50, 50]]}, "3 points"),
        ({"label": "lung", "shape_type": "rectangle", "points": [[40, 5], [40, 90]]}, "zero area"),
    ]:
        handled = Browser(ws).save(image_id, [POLY, bad])
        assert not handled["ok"] and handled["kind"] == "error"
        assert "Not saved" in handled["message"] and rule in handled["message"]
        assert "Nothing was stored" in handled["message"]
        assert latest_revision(ws, image_id, READER) is None
        assert load_draft(ws, image_id, READER)["shapes"] == [POLY, bad]


def test_reviewed_no_finding_is_an_explicit_negative_and_refused_with_shapes(ws):
    image_id = worklist_ids(ws, WorklistFilter())[0]
    browser = Browser(ws)
    assert "Nothing to save" in browser.save(image_id, [])["message"]
    refused = browser.save(image_id, [POLY], finding="reviewed_no_finding")
    assert not refused["ok"] and "images without shapes" in refused["message"]
    assert latest_revision(ws, image_id, READER) is None
    saved = browser.save(image_id, [], finding="reviewed_no_finding")
    assert saved["ok"] and "Saved revision 1 (0 shape(s))" in saved["message"]
    assert latest_finding(ws, image_id, READER) == "reviewed_no_finding"


def test_two_tabs_keep_both_revisions_and_the_page_offers_the_choice(ws, open_app):
    image_id = worklist_ids(ws, WorklistFilter())[0]
    tab_a, tab_b = Browser(ws, tab="a"), Browser(ws, tab="b")
    tab_b.draft(image_id, [BOX])
    warned = tab_a.draft(image_id, [POLY])
    assert "open in another tab" in warned["message"]
    assert tab_b.save(image_id, [BOX])["revision"] == 1
    handled = tab_a.save(image_id, [POLY])  # based on nothing: revision 1 is not its base
    assert handled["ok"] and handled["revision"] == 2 and "conflict" in handled["message"]
    assert handled["conflict"]["theirs"] == 1
    assert [r.revision for r in revision_history(ws, image_id, READER)] == [2, 1]
    # The page shows the choice; "use revision 1" makes that one current again.
    at = open_annotate(open_app, annotate_conflict=handled["conflict"])
    warning = texts(at.warning)
    assert "Saved with a conflict" in warning and "Yours is revision 2" in warning
    at.button(key="annotate_conflict_theirs").click().run()
    latest = latest_revision(ws, image_id, READER)
    assert latest.revision == 3 and latest.shapes[0]["shape_type"] == "rectangle"
    assert "Saved with a conflict" not in texts(at.warning)
    assert sent(at)["reset"]["image"] == image_id  # the annotator reloads the image


def test_moving_on_keeps_the_draft_and_follows_the_worklist(ws):
    first, second = worklist_ids(ws, WorklistFilter())
    browser = Browser(ws)
    draft = {"shapes": [POLY], "finding": None, "base_revision": None, "tab": "tab-a"}
    handled = browser.send("go", first, to="next", change=1, draft=draft)
    assert handled["goto"] == second
    assert load_draft(ws, first, READER)["shapes"] == [POLY]  # leaving never drops it
    assert browser.send("go", second, to="next")["goto"] is None
    assert "end of the worklist" in browser.send("go", second, to="next")["message"]
    assert browser.send("go", second, to="prev")["goto"] == first
    handled = browser.save(first, [POLY], then="next")
    assert handled["ok"] and handled["goto"] == second


def test_an_unreadable_event_is_answered_not_raised(ws):
    order = worklist_ids(ws, WorklistFilter())
    assert handle_event(ws, READER, "junk", order)["ok"] is False
    bad = handle_event(ws, READER, {"seq": 3, "kind": "save", "image_id": "x"}, order)
    assert bad == {"seq": 3, "ok": False, "kind": "error", "message": "No image named."}
    odd = handle_event(
        ws, READER, {"seq": 4, "kind": "save", "image_id": order[0], "shapes": "x"}, order
    )
    assert not odd["ok"] and "unreadable" in odd["message"]
    # A finding the product does not know: refused before the shapes are stored.
    bogus = Browser(ws).save(order[0], [BOX], finding="bogus")
    assert not bogus["ok"] and "'bogus' is not a finding" in bogus["message"]
    assert latest_revision(ws, order[0], READER) is None
    assert latest_finding(ws, order[0], READER) is None


# --- deep links `/annotate?image=...` (issue 13: unchecked input) -----------------------------


def open_annotate_link(open_app, image: str) -> AppTest:
    """The Annotate page opened from the link `/annotate?image=<image>`, in a fresh session."""
    return open_app("annotate", timeout=60, query={"image": image})


@pytest.mark.parametrize(
    "link", ["99999999999999999999", "9223372036854775808", "²", "-1", "12abc", "12345"]
)
def test_a_bad_image_link_shows_a_plain_message_and_the_first_image(ws, open_app, link):
    at = open_annotate_link(open_app, link)
    assert not at.exception, at.exception
    warning = texts(at.warning)
    assert "showing the first image of the worklist" in warning
    assert "Traceback" not in warning and link not in warning
    first = worklist_ids(ws, WorklistFilter())[0]
    assert at.session_state["annotate_image_id"] == first
    assert at.query_params["image"] == str(first)
    assert "image 1 of 2" in sent(at)["image"]["caption"]
    # The link's text is kept nowhere in the session, so it cannot come back on a rerun.
    assert at.session_state["annotate_query_seen"] == str(first)
    assert link not in at.session_state["annotate_link_warning"]

    at.run()
    assert not at.exception, at.exception
    assert at.session_state["annotate_image_id"] == first
    assert "showing the first image of the worklist" in texts(at.warning)


def test_a_good_image_link_opens_that_image(ws, open_app):
    second = worklist_ids(ws, WorklistFilter())[1]
    at = open_annotate_link(open_app, str(second))
    assert not at.exception, at.exception
    assert at.session_state["annotate_image_id"] == second
    assert "image 2 of 2" in sent(at)["image"]["caption"] and not at.warning


def test_another_readers_name_reaches_the_annotator_as_data_never_as_markup(ws, open_app):
    from core.labels.readers import add_reader

    name = "<img src=x onerror=alert(1)> *Dr*"
    add_reader(ws, name)
    image_id = worklist_ids(ws, WorklistFilter())[0]
    save_revision(ws, image_id, name, [BOX])
    at = open_annotate(open_app)
    (other,) = [o for o in sent(at)["image"]["others"] if o["reader"] == name]
    assert other["reader"] == name and other["shapes"][0]["points"] == BOX["points"]
    assert all(name not in m.value for m in at.markdown)  # the annotator sets it as text


def test_only_an_admin_sees_the_add_label_panel(ws, open_app):
    assert "Add a label (admin)" in [e.label for e in open_annotate(open_app).expander]
    at = open_annotate(open_app, login="annie", role="annotator")
    assert "Add a label (admin)" not in [e.label for e in at.expander]


def test_an_admin_adds_a_label_from_the_panel(ws, open_app):
    at = open_annotate(open_app)
    at.text_input(key="annotate_new_label").input("left lower lobe")
    at.button(key="annotate_add_label").click().run()
    assert not at.exception and not at.error
    assert "left lower lobe" in [label.name for label in list_labels(ws)]


def test_shapes_accepted_from_a_model_carry_their_origin(ws):
    from dataclasses import replace

    image_id = worklist_ids(ws, WorklistFilter())[0]
    drawn = save_revision(ws, image_id, READER, [BOX]).revision
    assert model_marks(drawn, READER) == []
    accepted = replace(drawn, origin="accepted", model_version_id=3)
    assert model_marks(accepted, READER) == [
        {"text": "from model v3, accepted by reader", "shapes": [drawn.shapes[0]]}
    ]
    unchecked = replace(drawn, origin="pre_annotation", model_version_id=3)
    assert model_marks(unchecked, READER)[0]["text"] == "prediction of model v3, not yet corrected"


def test_a_name_that_is_no_account_gets_the_reason_and_nothing_is_kept(ws):
    logins = sys.modules.get("pneumolab_test_logins")
    if logins is None:
        import importlib.util

        path = Path(__file__).resolve().parents[1] / "logins.py"
        spec = importlib.util.spec_from_file_location("pneumolab_test_logins", path)
        logins = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(logins)
    logins.ensure_account(ws)  # accounts exist: no first-start pass-through any more
    image_id = worklist_ids(ws, WorklistFilter())[0]
    viewer = Browser(ws, reader="vera")  # no such account (or a disabled one)
    for handled in (viewer.draft(image_id, [BOX]), viewer.save(image_id, [BOX])):
        assert not handled["ok"] and handled["kind"] == "error" and handled["message"]
    assert load_draft(ws, image_id, "vera") is None
    from core.labels.revisions import latest_by_reader

    assert "vera" not in latest_by_reader(ws, image_id)


def test_an_annotator_sees_other_readers_only_where_the_admin_allows(ws, open_app):
    from core.accounts import set_account_setting

    image_id = worklist_ids(ws, WorklistFilter())[0]
    save_revision(ws, image_id, READER, [BOX])  # the first save: accounts do not exist yet
    link = {"image": str(image_id)}

    def others(**kw) -> list[str]:
        at = open_app("annotate", timeout=60, query=link, **kw)
        assert not at.exception and sent(at)["image"]["id"] == image_id
        return [o["reader"] for o in sent(at)["image"]["others"]]

    assert READER in others(login="annie", role="annotator")
    set_account_setting(ws, "annotators_see_others", False, by=READER)
    assert others(login="annie", role="annotator") == []
    assert READER in others(login="rita", role="reviewer")  # reviewers always see them


def test_a_refused_label_name_is_shown_as_typed(ws, open_app):
    at = open_annotate(open_app)
    for _ in range(2):  # the second add is refused: the label exists
        at.text_input(key="annotate_new_label").input("**bold** <b>x</b>")
        at.button(key="annotate_add_label").click().run()
    (error,) = at.error
    assert "already exists" in error.value
    assert r"\*\*bold\*\* \<b\>x\</b\>" in error.value  # escaped: no markup
