"""Exceptions shared across rooms."""

from __future__ import annotations


class Cancelled(Exception):  # noqa: N818 - a state, like KeyboardInterrupt
    """The user cancelled the work in progress. Raised inside a job's handler (by the training
    loop, a prediction batch, ...); the job runner records the job as cancelled."""


class PermissionDenied(PermissionError):  # noqa: N818 - the name the interface agreed on
    """The acting account may not do this (core.accounts.require): unknown, disabled, or its
    role lacks the permission. The message says which role is needed; nothing was stored.
    A PermissionError, so callers that already show one (the review page) show this too."""

    def __init__(self, message: str, *, permission: str = "", actor: str = "") -> None:
        super().__init__(message)
        self.permission = permission
        self.actor = actor
