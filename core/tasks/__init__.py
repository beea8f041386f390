"""Job kinds: one table of what a worker can run, as MONAI Label registers its tasks.

Each kind names its handler as "module:function"; the function takes (ws, job_id, settings,
reporter) and returns a JSON-able result dict, and raises core.errors.Cancelled when the
reporter says the user cancelled. Names, not imports: the job machinery (core.jobs) stays
free of torch until a worker actually runs a training or prediction.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

TASKS: dict[str, str] = {
    "train": "core.tasks.train:run_training_job",
    "predict": "core.tasks.predict:run_prediction_job",
    "compare": "core.tasks.compare:run_compare_job",
    "embed": "core.tasks.embed:run_embedding_job",
    "update": "core.tasks.update:run_update_job",
}


def handler(kind: str) -> Callable[..., dict]:
    """The handler function of a job kind; ValueError listing the kinds for an unknown one."""
    if kind not in TASKS:
        raise ValueError(f"unknown job kind {kind!r}; valid kinds: {', '.join(sorted(TASKS))}")
    module, _, name = TASKS[kind].partition(":")
    return getattr(importlib.import_module(module), name)
