"""PneumoLab: label pneumonia on chest X-rays, train models from the labels, review them.

`streamlit run app/main.py` imports this file to find `app` (an st.App: Streamlit's server
plus the two routes that set and clear the login cookie, app/auth.py), then runs this same
file as the script of every browser session, where `__name__` is "__main__".
"""

from pathlib import Path

import streamlit as st

# (file, title, icon, the permission a role needs to open the page: core.vocab.PERMISSIONS)
PAGES = [
    ("worklist.py", "Worklist", ":material/view_list:", "view"),
    ("import_images.py", "Import", ":material/upload_file:", "import"),
    ("annotate.py", "Annotate", ":material/draw:", "label"),
    ("train.py", "Train", ":material/model_training:", "train"),
    ("review.py", "Review", ":material/fact_check:", "view"),
    ("models.py", "Models", ":material/deployed_code:", "view"),
    ("features.py", "Feature space", ":material/scatter_plot:", "view"),
    ("export.py", "Export", ":material/download:", "export"),
    ("admin.py", "Admin", ":material/admin_panel_settings:", "admin"),
]
PAGE_DIR = Path(__file__).resolve().parent / "app_pages"


def _pages(allowed) -> tuple[list, dict]:
    """Every page (so that each URL, deep links too, resolves), the ones `allowed` does not
    permit hidden from the menu; and what each page needs."""
    pages, needs = [], {}
    for i, (file, title, icon, permission) in enumerate(PAGES):
        if not (PAGE_DIR / file).exists():
            continue  # a page another part of the work has not added yet
        page = st.Page(
            f"app_pages/{file}",
            title=title,
            icon=icon,
            default=i == 0,
            visibility="visible" if allowed(permission) else "hidden",
        )
        pages.append(page)
        needs[page.url_path] = (title, permission)
    return pages, needs


def _run() -> None:
    from auth import gate, sidebar
    from ui_state import as_text, can, workspace

    from core.errors import PermissionDenied
    from core.jobs.worker import ensure_worker
    from core.vocab import ROLE_PERMISSIONS

    st.set_page_config(page_title="PneumoLab", page_icon=":material/radiology:", layout="wide")

    ws = workspace()
    account = gate(ws)
    if account is None:
        # Nobody logged in: the page of the URL is resolved (it opens after the login) but
        # never run; the menu is hidden.
        st.navigation(_pages(lambda _: False)[0], position="hidden")
        return

    # Jobs run in a worker process; start one if none holds this workspace's worker lock.
    ensure_worker(ws)
    pages, needs = _pages(can)
    page = st.navigation(pages)
    with st.sidebar:
        sidebar(ws, account)
        st.caption(f"Workspace: `{ws.root}`")

    title, permission = needs.get(page.url_path, (page.title, "view"))
    if not can(permission):
        roles = [r for r, perms in ROLE_PERMISSIONS.items() if permission in perms]
        st.error(
            f"The {title} page needs the {' or '.join(roles)} role; you are "
            f"{as_text(account.role)}. Ask your administrator if you need it."
        )
        return
    try:
        page.run()
    except PermissionDenied as e:
        st.error(f"{as_text(e)} Nothing was changed.")


if __name__ != "__main__":
    from auth import routes

    app = st.App(__file__, routes=routes())
else:
    _run()
