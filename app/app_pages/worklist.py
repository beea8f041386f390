"""Worklist: every image with its thumbnail, size, modality, import time and status."""

import streamlit as st
from ui_state import workspace

from core.catalog import modalities, worklist
from db.queries import WORKLIST_SORTS, WorklistFilter

ws = workspace()
STATUSES = ["", "unlabelled", "labelled", "negative", "reviewed"]
PAGE_SIZE = 24

st.title("Worklist")
c1, c2, c3 = st.columns(3)
status = c1.selectbox("Status", STATUSES, format_func=lambda s: s or "any", key="worklist_status")
modality = c2.selectbox(
    "Modality", [""] + modalities(ws), format_func=lambda s: s or "any", key="worklist_modality"
)
sort = c3.selectbox("Order", list(WORKLIST_SORTS), key="worklist_sort")
flt = WorklistFilter(status=status or None, modality=modality or None, sort=sort)

page_no = st.session_state.get("worklist_page", 0)
result = worklist(ws, flt, page_no, PAGE_SIZE)
if result.total == 0:
    st.info("No images yet. Open **Import** in the sidebar to add chest X-rays.")
    st.stop()

st.caption(f"{result.total} images · page {result.page + 1} of {result.pages}")
cols = st.columns(6)
for i, row in enumerate(result.rows):
    with cols[i % 6]:
        if row.thumbnail_path:
            st.image(str(ws.store_dir / row.thumbnail_path), width="stretch")
        st.markdown(
            f"**{row.display_name}**  \n{row.width}×{row.height} · {row.modality} · "
            f"{row.source_format.upper()}  \n{row.status} · {row.imported_at:%Y-%m-%d %H:%M}"
        )

prev_col, _, next_col = st.columns([1, 4, 1])
if prev_col.button("← Previous page", disabled=result.page == 0):
    st.session_state["worklist_page"] = result.page - 1
    st.rerun()
if next_col.button("Next page →", disabled=result.page + 1 >= result.pages):
    st.session_state["worklist_page"] = result.page + 1
    st.rerun()
