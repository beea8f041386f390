"""Read services for the worklist: plain dataclasses out, sessions closed behind them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.imaging import Window, render_display, window_presets
from core.imaging.display import model_input
from core.ingest.store import read_pixels
from core.vocab import STATUSES
from core.workspace import Workspace
from db import queries
from db.models import Image
from db.queries import WORKLIST_SORTS, ImageRow, WorklistFilter

__all__ = [
    "MAX_RECORD_ID",
    "STATUSES",
    "WORKLIST_SORTS",
    "ImageInfo",
    "ImageRow",
    "WorklistFilter",
    "WorklistPage",
    "display_image",
    "find_image",
    "image_info",
    "image_pixels",
    "is_record_id",
    "list_images",
    "modalities",
    "parse_image_id",
    "parse_record_id",
    "presets",
    "training_pixels",
    "worklist",
    "worklist_ids",
]


# Ids are INTEGER primary keys: 64-bit in SQLite but 32-bit in PostgreSQL, so the narrower
# range is the one every workspace can hold; a larger number would overflow in the driver.
MAX_RECORD_ID = 2**31 - 1


def parse_record_id(text: str) -> int | None:
    """A workspace record id (image, model version) written as text, or None if it is not one:
    ASCII digits only (str.isdigit also accepts "²" and other scripts' digits), 1 to
    MAX_RECORD_ID."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0")
    if not digits or len(digits) > len(str(MAX_RECORD_ID)):  # also keeps int() cheap
        return None
    value = int(digits)
    return value if value <= MAX_RECORD_ID else None


def parse_image_id(text: str) -> int | None:
    """An image id from a URL or a form field, or None if the text cannot be one."""
    return parse_record_id(text)


def is_record_id(value: object) -> bool:
    """Whether `value` is an int a workspace id column can hold (lookups check this first:
    the database driver raises OverflowError on larger ones)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RECORD_ID


@dataclass(frozen=True)
class WorklistPage:
    rows: list[ImageRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def worklist(
    ws: Workspace, flt: WorklistFilter, page: int = 0, page_size: int = 50
) -> WorklistPage:
    with ws.sessions() as s:
        total = queries.worklist_count(s, flt)
        pages = max(1, -(-total // page_size))
        page = min(max(page, 0), pages - 1)
        rows = queries.worklist_page(s, flt, page, page_size)
    return WorklistPage(rows=rows, total=total, page=page, page_size=page_size)


def list_images(ws: Workspace, flt: WorklistFilter | None = None) -> list[dict]:
    """Every image as a JSON-able dict (CLI `images --json`)."""
    flt = flt or WorklistFilter(sort="id")
    with ws.sessions() as s:
        rows = queries.all_images(s, flt)
    out = []
    for r in rows:
        d = asdict(r)
        d["imported_at"] = r.imported_at.isoformat()
        d.pop("thumbnail_path")
        out.append(d)
    return out


def modalities(ws: Workspace) -> list[str]:
    with ws.sessions() as s:
        return queries.modalities(s)


@dataclass(frozen=True)
class ImageInfo:
    id: int
    display_name: str
    width: int
    height: int
    modality: str
    source_format: str
    photometric: str
    bits_stored: int
    pixel_spacing: tuple[float, float] | None
    window_center: float | None
    window_width: float | None
    value_min: float
    value_max: float
    patient_key: str | None
    view: str | None
    status: str
    storage_path: str
    pixel_offset: float
    pixel_scale: float


def find_image(ws: Workspace, text: str) -> int:
    """The id of the image a link or a typed field names. LookupError saying why when the text
    is not an image id or no such image is in this workspace. The message never repeats the
    text: it came from outside, and the page keeps its messages in the session."""
    image_id = parse_image_id(text)
    if image_id is None:
        raise LookupError(
            "the requested image id is not valid "
            f"(image ids are whole numbers from 1 to {MAX_RECORD_ID:,})"
        )
    with ws.sessions() as s:
        if s.get(Image, image_id) is None:
            raise LookupError("the requested image is not in this workspace")
    return image_id


def image_info(ws: Workspace, image_id: int) -> ImageInfo:
    """What is stored about one image. KeyError if it is not in this workspace (including ids
    no database could hold)."""
    if not is_record_id(image_id):
        raise KeyError(f"image {image_id!r} is not in this workspace")
    with ws.sessions() as s:
        im = s.get(Image, image_id)
        if im is None:
            raise KeyError(f"image {image_id} is not in this workspace")
        spacing = (
            (im.pixel_spacing_row, im.pixel_spacing_col)
            if im.pixel_spacing_row is not None
            else None
        )
        return ImageInfo(
            id=im.id,
            display_name=im.display_name,
            width=im.width,
            height=im.height,
            modality=im.modality,
            source_format=im.source_format,
            photometric=im.photometric,
            bits_stored=im.bits_stored,
            pixel_spacing=spacing,
            window_center=im.window_center,
            window_width=im.window_width,
            value_min=im.value_min,
            value_max=im.value_max,
            patient_key=im.patient_key,
            view=im.view,
            status=im.status,
            storage_path=im.storage_path,
            pixel_offset=im.pixel_offset,
            pixel_scale=im.pixel_scale,
        )


def image_pixels(ws: Workspace, info: ImageInfo) -> np.ndarray:
    """Modality values of a stored image (float32, higher = brighter)."""
    return read_pixels(ws.store_dir, info.storage_path, info.pixel_offset, info.pixel_scale)


def presets(info: ImageInfo, pixels: np.ndarray) -> dict[str, Window]:
    return window_presets(
        pixels, info.window_center, info.window_width, info.value_min, info.value_max
    )


def display_image(
    ws: Workspace, image_id: int, window: Window | None = None, max_side: int | None = 1024
) -> np.ndarray:
    """Windowed uint8 rendition for the screen (default window when none is given)."""
    info = image_info(ws, image_id)
    pixels = image_pixels(ws, info)
    window = window or presets(info, pixels)["default"]
    return render_display(pixels, window, max_side)


def training_pixels(ws: Workspace, image_id: int) -> np.ndarray:
    """Image in [0, 1] under its default window: what models train and predict on."""
    info = image_info(ws, image_id)
    pixels = image_pixels(ws, info)
    return model_input(
        pixels, info.window_center, info.window_width, info.value_min, info.value_max
    )


def worklist_ids(ws: Workspace, flt: WorklistFilter) -> list[int]:
    """Every matching image id in worklist order: Save & next / previous walk this list."""
    with ws.sessions() as s:
        return queries.worklist_ids(s, flt)
