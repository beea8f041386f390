"""Which images and masks a training run gets from the workspace's labels."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.rasterise import label_mask
from annotations.shapes import shape_from_dict
from core.labels.catalog import training_pixels
from core.labels.readers import add_reader
from core.labels.reference import labelled_images
from core.labels.revisions import save_revision, set_finding
from core.tasks.submit import TrainRequest
from core.tasks.train import train, train_cache_dir, train_items


def box(label: str, x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"label": label, "points": [[x0, y0], [x1, y1]], "shape_type": "rectangle"}


@pytest.fixture
def ws(workspace, import_real_images):
    # Imported without their JSON, so no revision exists until a test saves one.
    report = import_real_images(workspace, 4, labelme=False)
    for name in ("ann", "bea", "cid"):
        add_reader(workspace, name)
    workspace.ids = report.imported
    return workspace


def _mask(ws, image_id: int, label: str, reader: str | None = None) -> np.ndarray:
    (li,) = [li for li in labelled_images(ws, label, reader) if li.image_id == image_id]
    (item,) = train_items(ws, [li], label)
    return item.mask()


def test_newest_revision_wins_and_other_labels_do_not_hide_it(ws):
    a = ws.ids[0]
    save_revision(ws, a, "ann", [box("lung", 10, 10, 50, 50)])
    newest = save_revision(ws, a, "ann", [box("lung", 20, 20, 80, 60)]).revision
    save_revision(ws, a, "bea", [box("pneumonia", 5, 5, 15, 15)])  # later, other label only
    (li,) = labelled_images(ws, "lung")
    assert li.revision_ids == (newest.id,) and not li.negative
    shapes = [shape_from_dict(d) for d in newest.shapes]
    expected = label_mask(shapes, (li.width, li.height), "lung")
    assert np.array_equal(_mask(ws, a, "lung"), expected)
    assert expected.sum() == 61 * 41


def test_chosen_reader_only_sees_that_readers_labels(ws):
    a, b = ws.ids[:2]
    save_revision(ws, a, "ann", [box("lung", 10, 10, 50, 50)])
    save_revision(ws, b, "bea", [box("lung", 10, 10, 20, 20)])
    assert [li.image_id for li in labelled_images(ws, "lung", "bea")] == [b]
    with pytest.raises(ValueError, match="unknown reader 'zoe'"):
        labelled_images(ws, "lung", "zoe")


def test_consensus_is_the_pixelwise_majority(ws):
    a = ws.ids[0]
    save_revision(ws, a, "ann", [box("lung", 0, 0, 29, 9)])  # columns 0-29
    save_revision(ws, a, "bea", [box("lung", 10, 0, 39, 9)])  # columns 10-39
    save_revision(ws, a, "cid", [box("lung", 20, 0, 49, 9)])  # columns 20-49
    mask = _mask(ws, a, "lung", "consensus")
    assert np.array_equal(np.flatnonzero(mask[0]), np.arange(10, 40))  # two of three
    assert not mask[10:].any()


def test_consensus_counts_a_no_finding_reader_as_an_empty_vote(ws):
    a = ws.ids[0]
    save_revision(ws, a, "ann", [box("pneumonia", 10, 10, 19, 19)])
    set_finding(ws, a, "ann", "pneumonia")  # a drawing reader is not counted twice
    set_finding(ws, a, "bea", "no_pneumonia")
    save_revision(ws, a, "cid", [box("pneumonia", 10, 10, 19, 19)])
    assert _mask(ws, a, "pneumonia", "consensus").sum() == 100  # two of three
    set_finding(ws, a, "cid", "reviewed_no_finding")
    save_revision(ws, a, "cid", [])  # cid withdraws the box
    assert not _mask(ws, a, "pneumonia", "consensus").any()  # one of three


def test_explicit_negatives_count_for_findings_not_for_anatomy(ws):
    a, b, c = ws.ids[:3]
    save_revision(ws, a, "ann", [box("pneumonia", 10, 10, 50, 50), box("lung", 5, 5, 90, 90)])
    set_finding(ws, b, "ann", "no_pneumonia")
    set_finding(ws, c, "bea", "reviewed_no_finding")
    by_id = {li.image_id: li for li in labelled_images(ws, "pneumonia")}
    assert set(by_id) == {a, b, c}
    assert not by_id[a].negative and by_id[b].negative and by_id[c].negative
    assert not _mask(ws, b, "pneumonia").any()
    # Lungs are on every chest X-ray: "no pneumonia" is no reason to learn an empty lung mask.
    assert [li.image_id for li in labelled_images(ws, "lung")] == [a]


def test_drawn_finding_outranks_an_older_negative(ws):
    a = ws.ids[0]
    set_finding(ws, a, "ann", "no_pneumonia")
    save_revision(ws, a, "bea", [box("pneumonia", 10, 10, 50, 50)])
    (li,) = labelled_images(ws, "pneumonia")
    assert not li.negative and _mask(ws, a, "pneumonia").any()


def test_unknown_label_names_the_workspace_labels(ws):
    with pytest.raises(ValueError, match="unknown label 'heart'.*lung, pneumonia"):
        labelled_images(ws, "heart")


def test_items_load_the_stored_image_under_its_default_window(ws):
    a = ws.ids[0]
    save_revision(ws, a, "ann", [box("lung", 10, 10, 50, 50)])
    (item,) = train_items(ws, labelled_images(ws, "lung"), "lung")
    image = item.load_image()
    assert np.array_equal(image, training_pixels(ws, a))
    assert image.shape == item.mask().shape and 0.0 <= image.min() <= image.max() <= 1.0


def test_too_few_labelled_images_is_refused_with_what_to_do(ws):
    save_revision(ws, ws.ids[0], "ann", [box("lung", 10, 10, 50, 50)])
    with pytest.raises(ValueError, match="label at least 3 images"):
        train(ws, TrainRequest(label="lung", size=64, epochs=1, device="cpu"))
    with pytest.raises(ValueError, match="Unknown architecture 'pspnet'"):
        train(ws, TrainRequest(label="lung", arch="pspnet"))
    assert not list(ws.models_dir.iterdir()) and not train_cache_dir(ws).exists()
