"""Query functions. They take a session and never commit: the calling service owns the
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from db.models import Image, LabelClass, Reader

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
