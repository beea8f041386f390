"""Query functions. They take a session and never commit: the calling service owns the
transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, Select, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from db.models import AnnotationRevision, Image, ImageFinding, LabelClass, Reader

# Above this many ids, `among` sends them as one parameter instead of one parameter each:
# PostgreSQL takes at most 65,535 parameters a statement and SQLite (as Debian builds it)
# 250,000, and a workspace may hold more images than either.
_LONG_ID_LIST = 1000


def among(s: Session, column: ColumnElement, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN ids` for any number of ids: a plain IN list when short; otherwise one
    array parameter on PostgreSQL (`= ANY(...)`) and one JSON parameter on SQLite
    (`IN (SELECT value FROM json_each(...))`)."""
    ids = sorted({int(i) for i in ids})
    if len(ids) <= _LONG_ID_LIST:
        return column.in_(ids)
    if s.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    values = func.json_each(json.dumps(ids)).table_valued("value")
    return column.in_(select(values.c.value))


WORKLIST_SORTS = {
    "newest": (Image.imported_at.desc(), Image.id.desc()),
    "oldest": (Image.imported_at.asc(), Image.id.asc()),
    "id": (Image.id.asc(),),
}


@dataclass(frozen=True)
class WorklistFilter:
    status: str | None = None
    modality: str | None = None
    sort: str = "newest"


@dataclass(frozen=True)
class ImageRow:
    id: int
    display_name: str
    width: int
    height: int
    modality: str
    source_format: str
    status: str
    imported_at: datetime
    thumbnail_path: str | None


def _filtered(stmt: Select, flt: WorklistFilter) -> Select:
    if flt.status:
        stmt = stmt.where(Image.status == flt.status)
    if flt.modality:
        stmt = stmt.where(Image.modality == flt.modality)
    return stmt


WORKLIST_COLUMNS = (
    Image.id,
    Image.display_name,
    Image.width,
    Image.height,
    Image.modality,
    Image.source_format,
    Image.status,
    Image.imported_at,
    Image.thumbnail_path,
)


def page_statement(flt: WorklistFilter, page: int = 0, page_size: int = 50) -> Select:
    """The worklist page query: only the listed columns, filtered, ordered, one page."""
    if flt.sort not in WORKLIST_SORTS:
        raise ValueError(f"unknown sort {flt.sort!r}; choose one of {sorted(WORKLIST_SORTS)}")
    if page_size < 1:
        raise ValueError(f"page size must be at least 1, not {page_size}")
    stmt = _filtered(select(*WORKLIST_COLUMNS), flt).order_by(*WORKLIST_SORTS[flt.sort])
    return stmt.limit(page_size).offset(max(page, 0) * page_size)


def worklist_page(
    s: Session, flt: WorklistFilter, page: int = 0, page_size: int = 50
) -> list[ImageRow]:
    """One page of the worklist (never more rows than the page shows)."""
    return [ImageRow(*r) for r in s.execute(page_statement(flt, page, page_size)).all()]


def all_images(s: Session, flt: WorklistFilter) -> list[ImageRow]:
    """Every matching image in worklist order (CLI listing; not for the UI)."""
    stmt = _filtered(select(*WORKLIST_COLUMNS), flt).order_by(*WORKLIST_SORTS[flt.sort])
    return [ImageRow(*r) for r in s.execute(stmt).all()]


def worklist_count(s: Session, flt: WorklistFilter) -> int:
    return s.scalar(_filtered(select(func.count(Image.id)), flt)) or 0


def worklist_ids(s: Session, flt: WorklistFilter) -> list[int]:
    """All image ids in worklist order (for next/previous navigation)."""
    stmt = _filtered(select(Image.id), flt).order_by(*WORKLIST_SORTS[flt.sort])
    return list(s.scalars(stmt))


def modalities(s: Session) -> list[str]:
    return list(s.scalars(select(Image.modality).distinct().order_by(Image.modality)))


def reader_by_name(s: Session, name: str) -> Reader | None:
    return s.scalar(select(Reader).where(Reader.name == name))


def label_classes(s: Session) -> list[LabelClass]:
    return list(s.scalars(select(LabelClass).order_by(LabelClass.id)))


def newest_per_reader(
    s: Session,
    model: type[AnnotationRevision] | type[ImageFinding],
    *,
    image_ids: Sequence[int] | None = None,
    reader_id: int | None = None,
) -> list[tuple[AnnotationRevision | ImageFinding, str]]:
    """Each reader's newest row of `model` (a revision or a finding) per image, with the
    reader's name, newest first; optionally only of some images or of one reader.

    The one rule for "a reader's current labels": the row with the highest id per (image,
    reader). Ids only grow, and a reader's revision numbers grow with them (a revision is
    numbered inside the transaction that writes it).
    """
    where = []
    if image_ids is not None:
        where.append(among(s, model.image_id, image_ids))
    if reader_id is not None:
        where.append(model.reader_id == reader_id)
    newest = (
        select(func.max(model.id).label("nid"))
        .where(*where)
        .group_by(model.image_id, model.reader_id)
        .subquery()
    )
    stmt = (
        select(model, Reader.name)
        .join(newest, newest.c.nid == model.id)
        .join(Reader, Reader.id == model.reader_id)
        .order_by(model.id.desc())
    )
    return [(row, name) for row, name in s.execute(stmt)]
