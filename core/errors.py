"""Exceptions shared across rooms."""

from __future__ import annotations


class Cancelled(Exception):  # noqa: N818 - a state, like KeyboardInterrupt
    """The user cancelled the work in progress. Raised inside a job's handler (by the training
    loop, a prediction batch, ...); the job runner records the job as cancelled."""
