"""Patient-wise split: no patient on both sides, deterministic for a seed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.ml.dataset import TrainItem, patient_of, patient_split


def _items(patients: list[str | None]) -> list[TrainItem]:
    def blank() -> np.ndarray:
        return np.zeros((4, 4), np.float32)

    return [TrainItem(i, key, blank, blank) for i, key in enumerate(patients)]


def _patients() -> list[str | None]:
    # 30 patients with 1-5 images each, plus 10 images of unknown patient.
    rng = random.Random(1)
    keys = [f"{p:064x}" for p in range(30) for _ in range(rng.randint(1, 5))]
    return keys + [None] * 10


def test_no_patient_on_both_sides():
    items = _items(_patients())
    for seed in range(5):
        train, val = patient_split(items, 0.25, seed)
        assert {patient_of(i) for i in train}.isdisjoint({patient_of(i) for i in val})
        assert sorted(i.image_id for i in train + val) == list(range(len(items)))


def test_same_seed_same_split_whatever_the_order():
    items = _items(_patients())
    _, val = patient_split(items, 0.2, seed=7)
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    _, val_again = patient_split(shuffled, 0.2, seed=7)
    assert {i.image_id for i in val} == {i.image_id for i in val_again}
    _, other = patient_split(items, 0.2, seed=8)
    assert {i.image_id for i in other} != {i.image_id for i in val}


def test_validation_share_is_close_to_the_fraction():
    items = _items(_patients())
    _, val = patient_split(items, 0.2, seed=0)
    # Whole patients move, so the share overshoots by at most one patient's images (5).
    assert 0.2 * len(items) <= len(val) <= 0.2 * len(items) + 5


def test_images_without_patient_are_their_own_patient():
    items = _items([None] * 10)
    train, val = patient_split(items, 0.3, seed=0)
    assert len(val) == 3 and len(train) == 7


def test_one_patients_images_stay_together():
    items = _items(["a"] * 6 + ["b"] * 2 + ["c"] * 2)
    train, val = patient_split(items, 0.5, seed=3)
    sides = {patient_of(i): ("val" if i in val else "train") for i in items}
    for item in items:
        assert sides[patient_of(item)] == ("val" if item in val else "train")
    assert train and val


def test_bad_fraction_is_refused():
    with pytest.raises(ValueError, match="val_fraction"):
        patient_split(_items(["a", "b"]), 1.0)
