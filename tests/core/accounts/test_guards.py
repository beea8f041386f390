"""The core services check who acts: once a workspace has accounts, a forged call (an annotator
signing off, importing, training, activating, exporting, adding a label; a name that is no
account) is refused with PermissionDenied and stores nothing; the roles that may act do, and
each action leaves an audit row naming the account."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from annotations.files import atomic_write_bytes
from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core import accounts
from core.accounts import PermissionDenied
from core.imaging.png import encode_png
from core.ingest.importer import import_paths
from core.interchange.export import export_workspace
from core.jobs.queue import submit_job
from core.jobs.records import cancel_job, get_job
from core.labels.drafts import save_draft
from core.labels.readers import add_label, list_labels
from core.labels.revisions import latest_by_reader, revision_history, set_finding
from core.review.actions import (
    accept_prediction,
    adjudicate,
    reject_prediction,
    sign_off,
    start_correction,
)
from core.review.features import submit_embedding
from core.tasks.submit import TrainRequest, submit_compare, submit_prediction, submit_training
from core.tasks.train import train
from core.tasks.update import submit_update
from core.versions import activate, get_version
from db.models import (
    AnnotationRevision,
    AuditEntry,
    Image,
    ImageFinding,
    Job,
    LabelClass,
    ModelVersion,
    Prediction,
    Reader,
    Review,
)

PASSWORD = "correct horse battery staple"
N_IMAGES = 3


def _fake_versions(ws) -> None:
    """Model versions 1 (active) and 2 whose stored prediction of each image is its import
    reader's lungs: review works from stored predictions, no model needs to run."""
    with ws.sessions.begin() as s:
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
        versions = []
        for active in (True, False):
            v = ModelVersion(
                label="lung", arch="unet", encoder="resnet18", image_size=64,
                checkpoint_path="models/none/best.pt", device="cpu", duration_s=0.0,
                is_active=active,
            )  # fmt: skip
            s.add(v)
            s.flush()
            versions.append(v.id)
    for version_id in versions:
        for image_id in ids:
            rev = latest_by_reader(ws, image_id)["import"]
            shapes = [shape_from_dict(d) for d in rev.shapes]
            mask = label_mask(shapes, (rev.image_width, rev.image_height), "lung")
            rel = f"predictions/v{version_id}/{image_id}.png"
            prob = np.where(mask, 0.9, 0.1)
            atomic_write_bytes(ws.store_dir / rel, encode_png(np.uint8(np.round(prob * 255))))
            with ws.sessions.begin() as s:
                s.add(
                    Prediction(
                        model_version_id=version_id, image_id=image_id, probability_path=rel,
                        score=0.9, uncertainty=0.1, boxes=[],
                    )
                )  # fmt: skip


def _setup(ws) -> None:
    _fake_versions(ws)
    accounts.create_account(ws, "alice", "admin", password=PASSWORD)
    for name, role in (("bob", "annotator"), ("rita", "reviewer")):
        accounts.create_account(ws, name, role, password=PASSWORD, by="alice")
    accounts.create_account(ws, "importer", "admin", service=True, by="alice")
    submit_job(ws, "predict", {"model": 1}, "alice")  # a queued job to cancel


@pytest.fixture(scope="module")
def prepared(prepared_workspace):
    return prepared_workspace("guards", N_IMAGES, _setup)


@pytest.fixture
def ws(prepared, workspace_copy):
    return workspace_copy(prepared)


@pytest.fixture
def one_labelme_pair(cxr_lungs_dir, tmp_path) -> Path:
    """A folder holding one real X-ray not yet imported, with its LabelMe lungs beside it."""
    jpg = sorted(cxr_lungs_dir.glob("*.jpg"))[N_IMAGES]
    folder = tmp_path / "to-import"
    folder.mkdir()
    shutil.copy(jpg, folder / jpg.name)
    shutil.copy(jpg.with_suffix(".json"), folder / f"{jpg.stem}.json")
    return folder


def _stored(ws) -> dict:
    """Everything a refused call must leave as it was."""
    with ws.sessions() as s:

        def count(model):
            return s.scalar(select(func.count()).select_from(model))

        return {
            "counts": {
                m.__tablename__: count(m)
                for m in (
                    AnnotationRevision,
                    ImageFinding,
                    Review,
                    Job,
                    LabelClass,
                    Image,
                    Reader,
                    AuditEntry,
                    Prediction,
                )
            },  # fmt: skip
            "statuses": list(s.execute(select(Image.id, Image.status).order_by(Image.id))),
            "jobs": list(s.execute(select(Job.id, Job.state, Job.cancel_requested))),
            "active": list(s.scalars(select(ModelVersion.id).where(ModelVersion.is_active))),
            "roles": list(s.execute(select(Reader.name, Reader.role, Reader.disabled))),
        }


POINT = [{"label": "lung", "shape_type": "point", "points": [[5, 6]]}]


def _calls(ws, actor, folder: Path, out: Path) -> dict:
    """Every action an annotator may not take, done as `actor`."""
    import_rev = latest_by_reader(ws, 1)["import"].id
    request = TrainRequest(label="lung", encoder="resnet18", size=32, epochs=1, created_by=actor)
    return {
        "sign_off": lambda: sign_off(ws, 1, actor, "looks right"),
        "accept": lambda: accept_prediction(ws, 1, 1, actor),
        "reject": lambda: reject_prediction(ws, 1, 1, actor, "wrong"),
        "correct": lambda: start_correction(ws, 1, 1, actor),
        "adjudicate": lambda: adjudicate(ws, 1, import_rev, actor),
        "import": lambda: import_paths(ws, [folder], imported_by=actor),
        "train": lambda: submit_training(ws, request),
        "train_in_process": lambda: train(ws, request),
        "compare": lambda: submit_compare(ws, ["unet", "segnet"], request),
        "predict": lambda: submit_prediction(ws, 1, actor),
        "embed": lambda: submit_embedding(ws, 1, actor),
        "update": lambda: submit_update(ws, actor),
        "cancel": lambda: cancel_job(ws, 1, actor=actor),
        "activate": lambda: activate(ws, 2, actor=actor),
        "export": lambda: export_workspace(ws, "all", out, actor=actor),
        "add_label": lambda: add_label(ws, "nodule", "#00ff00", actor=actor),
        "add_account": lambda: accounts.create_account(
            ws, "eve", "admin", password=PASSWORD, by=actor
        ),
        "set_role": lambda: accounts.set_role(ws, "bob", "admin", by=actor),
        "disable": lambda: accounts.set_disabled(ws, "alice", True, by=actor),
    }


CALLS = [
    "sign_off", "accept", "reject", "correct", "adjudicate", "import", "train",
    "train_in_process", "compare", "predict", "embed", "update", "cancel", "activate", "export",
    "add_label", "add_account", "set_role", "disable",
]  # fmt: skip


@pytest.mark.parametrize("action", CALLS)
def test_an_annotator_is_refused_and_nothing_is_stored(ws, action, one_labelme_pair, tmp_path):
    before = _stored(ws)
    out = tmp_path / "export"
    with pytest.raises(PermissionDenied, match="bob is an annotator") as refused:
        _calls(ws, "bob", one_labelme_pair, out)[action]()
    assert "must be a" in str(refused.value)  # it says which role is needed
    assert _stored(ws) == before
    assert not out.exists()


def test_reviewer_actions_name_the_reviewer_role(ws, one_labelme_pair, tmp_path):
    calls = _calls(ws, "bob", one_labelme_pair, tmp_path / "export")
    with pytest.raises(PermissionDenied, match="you must be a reviewer or an admin"):
        calls["sign_off"]()
    with pytest.raises(PermissionDenied, match="you must be an admin"):
        calls["import"]()


@pytest.mark.parametrize("actor", ["mallory", "reader", None, ""])
def test_a_name_that_is_not_an_account_is_refused_everything(ws, actor, one_labelme_pair, tmp_path):
    """ "mallory" was never a reader; "reader" is one from before accounts (role admin, no
    credential): neither can act, not even label."""
    before = _stored(ws)
    calls = _calls(ws, actor, one_labelme_pair, tmp_path / "export")
    calls["save"] = lambda: save_draft(ws, 1, actor, POINT, None, base_revision=None)
    calls["finding"] = lambda: set_finding(ws, 1, actor, "pneumonia")
    for name, call in calls.items():
        with pytest.raises(PermissionDenied, match="not an account|sign in|only an admin"):
            call()
            pytest.fail(f"{name} went through for {actor!r}")
    assert _stored(ws) == before


def test_a_disabled_reviewer_is_refused(ws):
    accounts.set_disabled(ws, "rita", True, by="alice")
    before = _stored(ws)
    with pytest.raises(PermissionDenied, match="disabled"):
        sign_off(ws, 1, "rita")
    assert _stored(ws) == before


def test_an_annotator_labels_and_each_save_is_an_audit_row(ws):
    saved = save_draft(ws, 1, "bob", POINT, "pneumonia", base_revision=None)
    assert saved.revision.reader == "bob"
    rows = accounts.audit_rows(ws, action="save")
    assert [(r.actor, r.target) for r in rows] == [("bob", "image 1")] * 2
    assert {"finding": "pneumonia"} in [r.detail for r in rows]


def test_a_promotion_applies_from_the_next_call(ws):
    with pytest.raises(PermissionDenied):
        sign_off(ws, 1, "bob")
    accounts.set_role(ws, "bob", "reviewer", by="alice")
    assert sign_off(ws, 1, "bob").reader == "bob"
    accounts.set_role(ws, "bob", "annotator", by="alice")
    with pytest.raises(PermissionDenied):
        sign_off(ws, 2, "bob")


def test_each_allowed_action_is_done_and_is_an_audit_row_naming_the_account(
    ws, one_labelme_pair, tmp_path
):
    start = max(r.id for r in accounts.audit_rows(ws))  # the set-up's rows come before
    reviewer = _calls(ws, "rita", one_labelme_pair, tmp_path / "unused")
    for action in ("accept", "reject", "sign_off", "adjudicate", "correct"):
        reviewer[action]()
    admin = _calls(ws, "alice", one_labelme_pair, tmp_path / "export")
    for action in ("import", "train", "predict", "embed", "cancel", "activate", "export",
                   "add_label"):  # fmt: skip
        admin[action]()
    assert get_version(ws, "active").id == 2
    assert get_job(ws, 1).state == "cancelled"
    assert "nodule" in [label.name for label in list_labels(ws)]
    assert (tmp_path / "export").is_dir()

    rows = [r for r in reversed(accounts.audit_rows(ws)) if r.id > start]
    done = [(r.actor, r.action, r.target) for r in rows]
    assert done == [
        ("rita", "accept", "image 1"),
        ("rita", "reject", "image 1"),
        ("rita", "sign_off", "image 1"),
        ("rita", "adjudicate", "image 1"),
        ("rita", "correct", "image 1"),
        ("alice", "import", "1 file"),
        ("alice", "train", f"job {_job_of(ws, 'train')}"),
        ("alice", "train", f"job {_job_of(ws, 'predict', last=True)}"),
        ("alice", "train", f"job {_job_of(ws, 'embed')}"),
        ("alice", "cancel", "job 1"),
        ("alice", "activate", "model version 2"),
        ("alice", "export", "all"),
        ("alice", "label_added", "nodule"),
    ]
    by_action = {r.action: r for r in rows}
    assert by_action["import"].detail == {
        "imported": 1, "duplicates": 0, "refused": 0, "annotations": 2,
    }  # fmt: skip
    assert by_action["export"].detail["images"] == N_IMAGES + 1
    # Every actor is an account, named by its id too.
    assert all(e.actor_id is not None for e in _entries(ws) if e.id > start)


def _job_of(ws, kind: str, last: bool = False) -> int:
    with ws.sessions() as s:
        ids = list(s.scalars(select(Job.id).where(Job.kind == kind).order_by(Job.id)))
    return ids[-1] if last else ids[0]


def _entries(ws) -> list[AuditEntry]:
    with ws.sessions() as s:
        return list(s.scalars(select(AuditEntry)))


def test_an_import_by_an_account_is_that_accounts_labelme_revision(ws, one_labelme_pair):
    report = import_paths(ws, [one_labelme_pair], imported_by="alice")
    assert report.annotations == 2
    image_id = report.imported[0]
    readers = latest_by_reader(ws, image_id)
    assert list(readers) == ["alice"]  # not the free-for-all "import" reader
    (rev,) = revision_history(ws, image_id, "alice")
    assert rev.origin == "imported"
    assert rev.provenance == "imported from LabelMe by alice"
    with ws.sessions() as s:
        comment = s.scalar(
            select(AnnotationRevision.comment).where(AnnotationRevision.id == rev.id)
        )
        imported_by = s.scalar(select(Image.imported_by).where(Image.id == image_id))
    assert comment == "imported from LabelMe by alice" and imported_by == "alice"


def test_a_service_identity_imports_without_a_password(ws, one_labelme_pair):
    report = import_paths(ws, [one_labelme_pair], imported_by="importer")
    rev = latest_by_reader(ws, report.imported[0])["importer"]
    assert rev.provenance == "imported from LabelMe by importer"
    assert accounts.audit_rows(ws, action="import")[0].actor == "importer"  # the newest


def test_without_accounts_the_import_reader_keeps_importing(workspace, one_labelme_pair):
    """First start: no account yet, so LabelMe revisions stay the "import" reader's, and a
    call naming nobody goes through (today's behaviour)."""
    report = import_paths(workspace, [one_labelme_pair], imported_by="cli")
    rev = latest_by_reader(workspace, report.imported[0])["import"]
    assert rev.provenance == "imported"
    (row,) = accounts.audit_rows(workspace, action="import")
    assert (row.actor, row.actor_id) == ("cli", None)


def test_annotators_see_other_readers_labels_only_where_the_admin_allows(ws):
    """The annotators_see_others setting, read by the service the annotator's other-readers
    layer comes from: off, an annotator gets only their own labels; reviewers keep all."""
    from core.labels.revisions import labels_visible_to, save_revision

    image_id = 1
    box = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [60, 60]]}
    save_revision(ws, image_id, "bob", [box])
    everyone = set(latest_by_reader(ws, image_id))
    assert {"bob", "import"} <= everyone
    assert set(labels_visible_to(ws, image_id, "bob")) == everyone  # allowed by default
    accounts.set_account_setting(ws, "annotators_see_others", False, by="alice")
    assert set(labels_visible_to(ws, image_id, "bob")) == {"bob"}
    assert set(labels_visible_to(ws, image_id, "rita")) == everyone
    assert labels_visible_to(ws, image_id, "nobody") == {}  # not an account: nothing


def test_review_shows_such_an_annotator_their_own_labels_as_ground_truth(ws):
    from core.labels.revisions import save_revision
    from core.review.view import load_review

    accounts.set_account_setting(ws, "annotators_see_others", False, by="alice")
    assert load_review(ws, 1, 1, viewer="rita").truth_reader == "import"  # a reviewer
    hidden = load_review(ws, 1, 1, truth_reader="import", viewer="bob")
    assert hidden.truth is None and hidden.dice is None  # bob has not labelled image 1
    box = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [60, 60]]}
    save_revision(ws, 1, "bob", [box])
    assert load_review(ws, 1, 1, viewer="bob").truth_reader == "bob"


def test_update_model_is_queued_for_an_admin_with_an_audit_row(ws):
    box = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [60, 60]]}
    from core.labels.revisions import save_revision

    save_revision(ws, 1, "alice", [box])  # a label changed since the active version
    job = submit_update(ws, "alice")
    (row,) = [r for r in accounts.audit_rows(ws, action="train") if r.target == f"job {job}"]
    assert row.actor == "alice" and row.detail["kind"] == "update"
