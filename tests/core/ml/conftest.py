"""Training tests run on CPU with one thread: on a shared two-core CI machine a starved
thread pool spins and runs several times slower than one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
