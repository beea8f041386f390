"""Training tests run on CPU with one torch thread (tests/conftest.py `torch_one_thread`)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    """Every test in this folder."""
