"""Import: upload PNG/JPEG/DICOM files (or .zip archives, with LabelMe JSON beside them)."""

import streamlit as st
from ui_state import reader_name, workspace

from core.ingest.importer import import_uploads

ws = workspace()
st.title("Import X-rays")
st.write(
    "PNG, JPEG and DICOM (CR/DX) files, several at once, or .zip archives of them. "
    "Patient names and IDs are never stored: DICOM identifiers are kept only as salted hashes, "
    "and stored images are named by their content."
)
files = st.file_uploader(
    "Chest X-rays",
    accept_multiple_files=True,
    # A new key after each import empties the uploader for the next batch.
    key=f"import_files_{st.session_state.get('import_round', 0)}",
    help="Identical images are stored once. Files that cannot be read are listed with the reason.",
)
if st.button("Import", type="primary", disabled=not files, key="import_start"):
    bar = st.progress(0.0, text="Importing…")

    def progress(i: int, n: int, _name: str) -> None:
        if i < n:
            bar.progress(i / n, text=f"Importing {i + 1} of {n}…")
        else:
            bar.progress(1.0, text=f"Done: {n} file(s) read")

    report = import_uploads(
        ws, [(f.name, f.getvalue()) for f in files], progress=progress, imported_by=reader_name()
    )
    st.session_state["import_last"] = report.summary()
    st.session_state["import_round"] = st.session_state.get("import_round", 0) + 1
    st.rerun()

last = st.session_state.get("import_last")
if last:
    msg = f"Imported {last['imported']} image(s); {last['duplicates']} already stored."
    if last.get("annotations"):
        msg += f" {last['annotations']} annotation(s) imported from LabelMe files."
    st.success(msg)
    if last["imported"]:
        st.page_link("app_pages/worklist.py", label="Open the worklist", icon=":material/list:")
    if last["refused"]:
        st.error(
            f"{len(last['refused'])} file(s) refused — nothing already stored was changed. "
            "Fix or re-export these files and import them again:"
        )
        st.table([{"file": r["path"], "reason": r["reason"]} for r in last["refused"]])
    if last.get("skipped"):
        st.info(
            f"{len(last['skipped'])} file(s) skipped: not X-rays this import reads, or a "
            "LabelMe JSON without its image. Nothing was stored from them:"
        )
        st.table([{"file": r["path"], "reason": r["reason"]} for r in last["skipped"]])
