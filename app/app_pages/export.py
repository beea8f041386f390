"""Export: a .zip of LabelMe JSON + images, PNG masks and COCO, for all or some images, one
reader's labels or the newest of each reader's."""

from datetime import datetime
from pathlib import Path

import streamlit as st
from ui_state import as_text, reader_name, workspace

from core.interchange.export import export_workspace
from core.labels.catalog import WorklistFilter, list_images, modalities
from core.labels.readers import list_readers
from core.vocab import STATUSES

FORMATS = {
    "all": "Everything: LabelMe JSON + images, PNG masks and COCO",
    "labelme": "LabelMe JSON + images",
    "masks": "PNG masks",
    "coco": "COCO JSON + images",
}

ws = workspace()
st.title("Export labels")
st.write(
    "Files are named by the workspace's image names (IMG-000042); the images are exported as "
    "displayed, without any patient information. LabelMe files open unchanged in the labelme "
    "program."
)

with st.form("export_form"):
    fmt = st.radio("What", list(FORMATS), format_func=FORMATS.get, key="export_format")
    readers = [r.name for r in list_readers(ws)]
    reader = st.selectbox(
        "Whose labels",
        [None] + readers,
        format_func=lambda r: (
            "newest revision of each reader (one folder per reader)" if r is None else f"only {r}"
        ),
        key="export_reader",
    )
    c1, c2 = st.columns(2)
    status = c1.selectbox(
        "Images with status", ["", *STATUSES], format_func=lambda s: s or "any", key="export_status"
    )
    modality = c2.selectbox(
        "Modality", [""] + modalities(ws), format_func=lambda m: m or "any", key="export_modality"
    )
    image_data = st.checkbox(
        "Embed the image inside each LabelMe file (imageData; larger files)",
        key="export_image_data",
    )
    go = st.form_submit_button("Prepare export", type="primary")

if go:
    filtered = status or modality
    image_ids = (
        [im["id"] for im in list_images(ws, WorklistFilter(status=status or None,
                                                           modality=modality or None, sort="id"))]
        if filtered
        else None
    )  # fmt: skip
    bar = st.progress(0.0, text="Preparing export…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Exported {done} of {total}…")

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = ws.root / "exports" / f"pneumolab-{fmt}-{stamp}.zip"
    try:
        summary = export_workspace(
            ws,
            fmt,
            target,
            reader,
            image_data,
            True,
            image_ids,
            progress=progress,
            actor=reader_name(),
        )
    except ValueError as e:  # ExportError too: a full disk or read-only folder, said plainly
        bar.empty()
        st.error(f"Export failed: {as_text(e)}")
    else:
        bar.progress(1.0, text="Export ready")
        st.session_state["export_last"] = {**summary, "path": str(target)}

last = st.session_state.get("export_last")
if last:
    path = Path(last["path"])
    if path.exists():
        st.success(
            f"{last.get('labelme_files', 0)} LabelMe file(s), {last.get('masks', 0)} mask(s), "
            f"{last.get('coco_files', 0)} COCO file(s) for {last.get('images', 0)} image(s)."
        )
        renamed = last.get("renamed") or {}
        if renamed:
            st.caption(
                "Folder and file names given to readers and labels whose names are not plain "
                "file names: " + "; ".join(f"{name} → {form}" for name, form in renamed.items())
            )
        st.download_button(
            "Download .zip",
            data=path.read_bytes(),
            file_name=path.name,
            mime="application/zip",
            type="primary",
            key="export_download",
        )
