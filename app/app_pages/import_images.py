"""Import: upload PNG/JPEG/DICOM files (or .zip archives, with LabelMe JSON beside them)."""

import streamlit as st
from ui_state import reader_name, workspace

from core.importer import import_uploads

ws = workspace()
st.title("Import X-rays")
st.write(
    "PNG, JPEG and DICOM (CR/DX) files, several at once, or .zip archives of them. "
    "Patient names and IDs are never stored: DICOM identifiers are kept only as salted hashes."
)
files = st.file_uploader(
    "Chest X-rays",
    accept_multiple_files=True,
    key=f"import_files_{st.session_state.get('import_round', 0)}",
)
if st.button("Import", type="primary", disabled=not files):
    bar = st.progress(0.0, text="Importing…")

    def progress(i: int, n: int, _name: str) -> None:
        bar.progress(i / n if n else 1.0, text=f"Importing {i} of {n}…")

    report = import_uploads(
        ws, [(f.name, f.getvalue()) for f in files], progress=progress, imported_by=reader_name()
    )
    bar.progress(1.0, text="Done")
    st.session_state["import_last"] = report.summary()
    st.session_state["import_round"] = st.session_state.get("import_round", 0) + 1
    st.rerun()

last = st.session_state.get("import_last")
if last:
    msg = f"Imported {last['imported']} image(s); {last['duplicates']} already stored."
    if last.get("annotations"):
        msg += f" {last['annotations']} annotation file(s) imported."
    st.success(msg)
    if last["refused"]:
        st.error(f"{len(last['refused'])} file(s) refused — nothing already stored was changed:")
        st.table([{"file": r["path"], "reason": r["reason"]} for r in last["refused"]])
