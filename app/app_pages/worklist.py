"""Worklist: every image with its thumbnail, size, modality, import time and annotation status.

One page of rows is read per run (`core.labels.catalog.worklist`), so 100,000 images stay fast.
"""

import streamlit as st
from ui_state import workspace

from core.labels.catalog import WORKLIST_SORTS, WorklistFilter, modalities, worklist
from core.vocab import STATUSES

ws = workspace()
PAGE_SIZES = [12, 24, 48, 96]
COLUMNS = 6
STATUS_COLOURS = {"labelled": "green", "negative": "blue", "reviewed": "violet"}
SORT_LABELS = {"newest": "Newest first", "oldest": "Oldest first", "id": "Image number"}


def _first_page() -> None:
    """Filters changed: what was page 7 may not exist any more."""
    st.session_state.pop("worklist_page_no", None)  # the pager starts again at 1


def _go_to() -> None:
    if st.session_state.get("worklist_goto") is not None:
        st.session_state["worklist_page_no"] = int(st.session_state["worklist_goto"])


st.title("Worklist")
c1, c2, c3, c4 = st.columns(4)
status = c1.selectbox(
    "Status",
    [""] + list(STATUSES),
    format_func=lambda s: s or "any",
    key="worklist_status",
    on_change=_first_page,
)
modality = c2.selectbox(
    "Modality",
    [""] + modalities(ws),
    format_func=lambda s: s or "any",
    key="worklist_modality",
    on_change=_first_page,
)
sort = c3.selectbox(
    "Order",
    list(WORKLIST_SORTS),
    format_func=lambda s: SORT_LABELS.get(s, s),
    key="worklist_sort",
    on_change=_first_page,
)
page_size = c4.selectbox(
    "Images per page", PAGE_SIZES, index=1, key="worklist_page_size", on_change=_first_page
)
flt = WorklistFilter(status=status or None, modality=modality or None, sort=sort)

wanted = int(st.session_state.get("worklist_page_no", 1))
result = worklist(ws, flt, wanted - 1, page_size)
if result.total == 0:
    if status or modality:
        st.info("No image matches these filters. Set Status and Modality to **any** to see all.")
    else:
        st.info("No images yet. Open **Import** in the sidebar to add chest X-rays.")
    st.stop()
if result.page + 1 != wanted:
    # Past the end (images were removed meanwhile): the service showed the last page.
    st.session_state["worklist_page_no"] = result.page + 1

st.caption(
    f"{result.total} image(s) · page {result.page + 1} of {result.pages} · {page_size} per page"
)
for i, row in enumerate(result.rows):
    if i % COLUMNS == 0:
        cols = st.columns(COLUMNS)  # one grid row at a time keeps cards in reading order
    with cols[i % COLUMNS], st.container(border=True, key=f"worklist_card_{row.id}"):
        if row.thumbnail_path and (ws.store_dir / row.thumbnail_path).is_file():
            st.image(str(ws.store_dir / row.thumbnail_path), width="stretch")
        else:
            st.caption("thumbnail missing")
        colour = STATUS_COLOURS.get(row.status, "gray")
        st.markdown(
            f"**{row.display_name}**  \n{row.width}×{row.height} px · {row.modality} · "
            f"{row.source_format.upper()}  \n:{colour}-badge[{row.status}] · "
            f"{row.imported_at:%Y-%m-%d %H:%M}"
        )
        st.page_link(
            "app_pages/annotate.py",
            label="Annotate",
            icon=":material/draw:",
            query_params={"image": str(row.id)},
        )

nav_col, goto_col = st.columns([4, 1], vertical_alignment="bottom")
with nav_col:
    st.pagination(result.pages, key="worklist_page_no", max_visible_pages=9)
goto_col.number_input(
    "Go to page",
    min_value=1,
    max_value=result.pages,
    value=None,
    step=1,
    key="worklist_goto",
    on_change=_go_to,
)
