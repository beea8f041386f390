"""Readers (the people who label and review) and the workspace label set."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.accounts import require
from core.accounts.audit import add_audit
from core.vocab import ROLES
from core.workspace import Workspace
from db import queries
from db.models import LabelClass, Reader

MAX_LABEL_CHARS = 64  # the label column holds 64
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class ReaderInfo:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class LabelInfo:
    id: int
    name: str
    color: str


def list_readers(ws: Workspace) -> list[ReaderInfo]:
    with ws.sessions() as s:
        return [
            ReaderInfo(r.id, r.name, r.role) for r in s.scalars(select(Reader).order_by(Reader.id))
        ]


def add_reader(ws: Workspace, name: str, role: str = "annotator") -> ReaderInfo:
    name = name.strip()
    if not name:
        raise ValueError("reader name is empty; type a name")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    try:
        with ws.sessions.begin() as s:
            r = Reader(name=name, role=role)
            s.add(r)
            s.flush()
            return ReaderInfo(r.id, r.name, r.role)
    except IntegrityError as e:
        raise ValueError(f"a reader named {name!r} already exists") from e


def get_or_create_reader(ws: Workspace, name: str, role: str = "annotator") -> ReaderInfo:
    """The reader called `name`, added with `role` if there is none; when another process
    adds it at the same moment, that one is returned."""
    for _ in range(2):
        with ws.sessions() as s:
            r = queries.reader_by_name(s, name)
            if r is not None:
                return ReaderInfo(r.id, r.name, r.role)
        try:
            return add_reader(ws, name, role)
        except ValueError as e:
            if not isinstance(e.__cause__, IntegrityError):
                raise  # an empty name or an unknown role, not a concurrent add
    raise ValueError(f"reader {name!r} could not be added")  # added and removed meanwhile


def list_labels(ws: Workspace) -> list[LabelInfo]:
    with ws.sessions() as s:
        return [LabelInfo(c.id, c.name, c.color) for c in queries.label_classes(s)]


def _check_label_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_LABEL_CHARS:
        raise ValueError(f"label name must be 1 to {MAX_LABEL_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("label name holds a control character; type it again")


def add_label(
    ws: Workspace, name: str, color: str = "#ffcc00", *, actor: str | None = None
) -> LabelInfo:
    """Add a label class. `actor` is the account adding it: PermissionDenied unless it is an
    admin (once the workspace has accounts); an audit row "label_added"."""
    name = name.strip()
    _check_label_name(name)
    if not _COLOR.match(color):
        raise ValueError(f"colour {color!r} is not of the form #RRGGBB")
    require(ws, actor, "admin")
    try:
        with ws.sessions.begin() as s:
            c = LabelClass(name=name, color=color)
            s.add(c)
            s.flush()
            add_audit(s, actor, "label_added", name, {"color": color})
            return LabelInfo(c.id, c.name, c.color)
    except IntegrityError as e:
        raise ValueError(f"label {name!r} already exists") from e


def ensure_label(ws: Workspace, name: str) -> None:
    """Add label class `name` unless it exists (also when another process adds it now)."""
    _check_label_name(name)
    try:
        with ws.sessions.begin() as s:
            if s.scalar(select(LabelClass.id).where(LabelClass.name == name)) is None:
                s.add(LabelClass(name=name, color="#ffcc00"))
    except IntegrityError:
        with ws.sessions() as s:
            if s.scalar(select(LabelClass.id).where(LabelClass.name == name)) is None:
                raise
