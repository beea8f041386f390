"""Provenance and the reference standard: every revision says where it came from, and
training and review score against human truth (a reviewer's adjudication, else the human
readers), never against a model's own accepted output unless asked to."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from core.labels.readers import add_label, add_reader
from core.labels.reference import labelled_images
from core.labels.revisions import latest_revision, save_revision, set_finding
from core.review.actions import adjudicate, review_history
from db.migrate import upgrade
from db.models import ModelVersion

BOX = {"label": "lung", "shape_type": "rectangle", "points": [[10, 10], [60, 80]]}
MODEL_BOX = {"label": "lung", "shape_type": "rectangle", "points": [[100, 100], [200, 220]]}
FIXED_BOX = {"label": "lung", "shape_type": "rectangle", "points": [[100, 100], [180, 200]]}


@pytest.fixture
def ws(imported_workspace):
    """Two real X-rays with their imported LabelMe lungs, a model version, and readers."""
    ws = imported_workspace(2)
    with ws.sessions.begin() as s:
        s.add(ModelVersion(label="lung", arch="unet", encoder="resnet18", image_size=64,
                           checkpoint_path="models/none/best.pt", device="cpu", duration_s=0))  # fmt: skip
    add_reader(ws, "anna", "annotator")
    add_reader(ws, "rita", "reviewer")
    return ws


def _accept(ws, image_id, reader, tool="model"):
    """What accept_prediction / start_correction store: the model's shapes, source "model"."""
    base = latest_revision(ws, image_id, reader)
    return save_revision(
        ws, image_id, reader, [MODEL_BOX], based_on=base.revision if base else None,
        tool=tool, source="model", model_version_id=1,
    ).revision  # fmt: skip


def test_every_revision_records_where_it_came_from(ws):
    imported = latest_revision(ws, 1, "import")
    assert (imported.origin, imported.provenance) == ("imported", "imported")
    drawn = save_revision(ws, 1, "anna", [BOX]).revision
    assert drawn.provenance == "drawn"
    accepted = _accept(ws, 1, "anna")
    assert (accepted.origin, accepted.provenance) == ("accepted", "accepted from model v1")
    opened = _accept(ws, 2, "anna", tool="pre-annotation")
    assert opened.provenance == "prediction of model v1, not yet corrected"
    fixed = save_revision(ws, 2, "anna", [FIXED_BOX], based_on=opened.revision).revision
    assert (fixed.origin, fixed.model_version_id) == ("corrected", 1)
    assert fixed.provenance == "corrected from model v1"
    again = save_revision(ws, 2, "anna", [BOX], based_on=fixed.revision).revision
    assert again.provenance == "corrected from model v1"  # still descends from the model
    assert latest_revision(ws, 2, "anna").origin == "corrected"


def test_an_accepted_prediction_does_not_replace_the_experts_labels_as_truth(ws):
    expert = latest_revision(ws, 1, "import")
    accepted = _accept(ws, 1, "anna")  # newer than the expert's revision
    [ref] = labelled_images(ws, "lung", image_ids=[1])
    assert ref.revision_ids == (expert.id,)
    assert ref.reason == "newest human revision: revision 1 of import (imported)"
    # Opting in makes model output count, and then it is the newest.
    [opt_in] = labelled_images(ws, "lung", image_ids=[1], include_model=True)
    assert opt_in.revision_ids == (accepted.id,)


def test_a_correction_of_a_prediction_is_human_truth(ws):
    opened = _accept(ws, 1, "anna", tool="pre-annotation")
    [before] = labelled_images(ws, "lung", image_ids=[1])
    assert before.readers == ("import",)  # the uncorrected prediction does not count
    fixed = save_revision(ws, 1, "anna", [FIXED_BOX], based_on=opened.revision).revision
    [after] = labelled_images(ws, "lung", image_ids=[1])
    assert after.revision_ids == (fixed.id,)
    assert after.reason == "newest human revision: revision 2 of anna (corrected from model v1)"
    assert after.mask("lung").sum() == 81 * 101  # the corrected box, rasterised


def test_a_reviewers_adjudication_decides_even_for_a_model_made_revision(ws):
    accepted = _accept(ws, 1, "anna")
    adjudicate(ws, 1, accepted.id, "rita", "the prediction is right here")
    [ref] = labelled_images(ws, "lung", image_ids=[1])
    assert ref.revision_ids == (accepted.id,)
    assert ref.reason == "adjudicated by rita: revision 1 of anna (accepted from model v1)"
    [consensus] = labelled_images(ws, "lung", "consensus", image_ids=[1])
    assert consensus.revision_ids == (accepted.id,)
    # A named reader is an explicit choice: the adjudication does not override it.
    [imports] = labelled_images(ws, "lung", "import", image_ids=[1])
    assert imports.revision_ids == (latest_revision(ws, 1, "import").id,)
    # The newest adjudication wins, and the history keeps both.
    expert = latest_revision(ws, 1, "import")
    adjudicate(ws, 1, expert.id, "rita")
    assert labelled_images(ws, "lung", image_ids=[1])[0].revision_ids == (expert.id,)
    decisions = [(h.decision, h.revision_id) for h in review_history(ws, 1)]
    assert decisions == [("adjudicated", accepted.id), ("adjudicated", expert.id)]


def test_only_a_reviewer_can_adjudicate_and_only_a_revision_of_that_image(ws):
    expert = latest_revision(ws, 1, "import")
    with pytest.raises(PermissionError, match="only a reviewer or an admin"):
        adjudicate(ws, 1, expert.id, "anna")
    with pytest.raises(ValueError, match=f"revision {expert.id} is not a revision of image 2"):
        adjudicate(ws, 2, expert.id, "rita")
    assert review_history(ws, 1) == [] and review_history(ws, 2) == []


def test_migration_classifies_revisions_saved_before_provenance(tmp_path):
    """A workspace from before migration 0004: its model-made revisions and the corrections
    based on them get their origin from source, tool and base revision."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0003")
    rows = [  # id, reader, revision, based_on, tool, source, model version
        (1, 1, 1, None, "manual", "manual", None),
        (2, 1, 2, 1, "pre-annotation", "model", 1),
        (3, 1, 3, 2, "canvas", "manual", None),
        (4, 1, 4, 3, "canvas", "manual", None),
        (5, 2, 1, None, "labelme-import", "import", None),
        (6, 2, 2, 1, "model", "model", 1),
    ]
    with engine.begin() as c:
        c.execute(text("INSERT INTO readers (id, name, role, created_at) VALUES "
                       "(1, 'a', 'annotator', '2026-01-01'), (2, 'b', 'reviewer', '2026-01-01')"))  # fmt: skip
        c.execute(text(
            "INSERT INTO images (id, content_hash, source_format, modality, width, height, "
            "bits_stored, photometric, value_min, value_max, storage_path, pixel_offset, "
            "pixel_scale, display_name, status, imported_at) VALUES (1, 'h', 'png', 'OT', 9, "
            "9, 8, 'MONOCHROME2', 0, 255, 'p', 0, 1, 'IMG-000001', 'labelled', '2026-01-01')"
        ))  # fmt: skip
        c.execute(text(
            "INSERT INTO model_versions (id, label, arch, encoder, image_size, settings, "
            "data_snapshot, history, metrics, checkpoint_path, device, duration_s, is_active, "
            "created_at) VALUES (1, 'lung', 'unet', 'resnet18', 64, '{}', '{}', '[]', '{}', "
            "'m', 'cpu', 0, 0, '2026-01-01')"
        ))  # fmt: skip
        for rid, reader, number, based_on, tool, source, model in rows:
            c.execute(
                text(
                    "INSERT INTO annotation_revisions (id, image_id, reader_id, revision, "
                    "based_on_revision, created_at, tool, source, model_version_id, "
                    "image_width, image_height, shapes) VALUES (:id, 1, :reader, :n, :based, "
                    "'2026-01-01', :tool, :source, :model, 9, 9, '[]')"
                ),
                {"id": rid, "reader": reader, "n": number, "based": based_on, "tool": tool,
                 "source": source, "model": model},
            )  # fmt: skip
    upgrade(engine)
    with engine.connect() as c:
        got = dict(c.execute(text("SELECT id, origin FROM annotation_revisions")).all())
        versions = dict(
            c.execute(text("SELECT id, model_version_id FROM annotation_revisions")).all()
        )
    assert got == {1: "drawn", 2: "pre_annotation", 3: "corrected", 4: "corrected",
                   5: "imported", 6: "accepted"}  # fmt: skip
    assert versions[3] == versions[4] == 1
    engine.dispose()


PNEUMONIA = {"label": "pneumonia", "shape_type": "rectangle", "points": [[20, 20], [40, 50]]}


def _model_pneumonia(ws, image_id, reader):
    """What accept_prediction stores for a pneumonia model: the reader's other shapes kept."""
    with ws.sessions.begin() as s:
        s.add(ModelVersion(label="pneumonia", arch="unet", encoder="resnet18", image_size=64,
                           checkpoint_path="models/p/best.pt", device="cpu", duration_s=0))  # fmt: skip
    base = latest_revision(ws, image_id, reader)
    kept = [d for d in (base.shapes if base else []) if d["label"] != "pneumonia"]
    return save_revision(
        ws, image_id, reader, [*kept, PNEUMONIA], based_on=base.revision if base else None,
        tool="model", source="model", model_version_id=2,
    ).revision  # fmt: skip


def test_accepting_a_pneumonia_prediction_keeps_the_readers_own_lungs_as_truth(ws):
    own = save_revision(ws, 1, "anna", [BOX]).revision  # anna's lungs, drawn
    accepted = _model_pneumonia(ws, 1, "anna")
    [lungs] = labelled_images(ws, "lung", "anna", image_ids=[1])
    assert lungs.revision_ids == (accepted.id,)  # her lung shapes, carried over, are hers
    assert lungs.mask("lung").sum() == 51 * 71 and own.id != accepted.id
    assert labelled_images(ws, "pneumonia", "anna", image_ids=[1]) == []  # model output


def test_a_readers_newer_shapes_outdate_their_own_negative_finding(ws):
    set_finding(ws, 1, "anna", "reviewed_no_finding")
    [negative] = labelled_images(ws, "pneumonia", image_ids=[1])
    assert negative.negative and negative.reason.startswith("explicit negative: anna")
    _model_pneumonia(ws, 1, "anna")  # newer than her finding: she now says there is one
    assert labelled_images(ws, "pneumonia", image_ids=[1]) == []  # not truth, not negative


def test_an_adjudicated_revision_without_the_finding_makes_the_image_negative(ws):
    save_revision(ws, 1, "anna", [PNEUMONIA])
    clear = save_revision(ws, 1, "rita", []).revision  # nothing on this image
    adjudicate(ws, 1, clear.id, "rita")
    [ref] = labelled_images(ws, "pneumonia", image_ids=[1])
    assert ref.negative and ref.revision_ids == (clear.id,)
    assert ref.reason.endswith(", no pneumonia")
    # Anatomy is on every image: a revision without lungs says nothing about them.
    [lungs] = labelled_images(ws, "lung", image_ids=[1])
    assert lungs.revision_ids == (latest_revision(ws, 1, "import").id,)


def test_no_pneumonia_says_nothing_about_other_finding_labels(ws):
    add_label(ws, "pneumothorax")
    set_finding(ws, 1, "anna", "no_pneumonia")
    set_finding(ws, 2, "anna", "reviewed_no_finding")
    assert [li.image_id for li in labelled_images(ws, "pneumonia")] == [1, 2]
    assert [li.image_id for li in labelled_images(ws, "pneumothorax")] == [2]


def test_a_consensus_with_a_minority_vote_is_negative(ws):
    save_revision(ws, 1, "anna", [PNEUMONIA])
    set_finding(ws, 1, "rita", "no_pneumonia")
    add_reader(ws, "bob", "annotator")
    set_finding(ws, 1, "bob", "reviewed_no_finding")
    [ref] = labelled_images(ws, "pneumonia", "consensus", image_ids=[1])
    assert ref.negative and not ref.mask("pneumonia").any()
    assert ref.reason == "consensus of 3 reader(s)"


def test_an_upgrade_to_0004_killed_halfway_finishes_on_the_next_open(tmp_path):
    """SQLite commits each DDL step: a kill after the new column leaves the schema at 0003
    with the column there; the next upgrade must finish, not fail on a duplicate column."""
    engine = create_engine(f"sqlite:///{tmp_path / 'half.db'}")
    upgrade(engine, "0003")
    with engine.begin() as c:
        c.execute(text("ALTER TABLE annotation_revisions ADD COLUMN origin VARCHAR(16) "
                       "NOT NULL DEFAULT 'drawn'"))  # fmt: skip
        c.execute(text("CREATE TABLE _alembic_tmp_reviews (id INTEGER)"))  # a half-made copy
    upgrade(engine, "0004")
    with engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"
        columns = {row[1] for row in c.execute(text("PRAGMA table_info(reviews)"))}
        tables = {row[0] for row in c.execute(text("SELECT name FROM sqlite_master"))}
    assert "revision_id" in columns and "_alembic_tmp_reviews" not in tables
    engine.dispose()
