"""PneumoLab: label pneumonia on chest X-rays, train models from the labels, review them."""

import streamlit as st
from ui_state import workspace

from core.jobs.worker import ensure_worker
from core.labels.readers import list_readers

st.set_page_config(page_title="PneumoLab", page_icon=":material/radiology:", layout="wide")

ws = workspace()
# Jobs run in a worker process; start one if none holds this workspace's worker lock.
ensure_worker(ws)

pages = [
    st.Page("app_pages/worklist.py", title="Worklist", icon=":material/view_list:", default=True),
    st.Page("app_pages/import_images.py", title="Import", icon=":material/upload_file:"),
    st.Page("app_pages/annotate.py", title="Annotate", icon=":material/draw:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/review.py", title="Review", icon=":material/fact_check:"),
    st.Page("app_pages/models.py", title="Models", icon=":material/deployed_code:"),
    st.Page("app_pages/features.py", title="Feature space", icon=":material/scatter_plot:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
]
page = st.navigation(pages)

with st.sidebar:
    names = [r.name for r in list_readers(ws)]
    if st.session_state.get("sidebar_reader") not in names:
        st.session_state["sidebar_reader"] = names[0]
    st.selectbox("Reader", names, key="sidebar_reader", help="Whose labels you see and save.")
    st.caption(f"Workspace: `{ws.root}`")

page.run()
