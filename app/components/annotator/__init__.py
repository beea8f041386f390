"""The annotator: a Streamlit custom component whose drawing, editing, zoom, pan,
window/level, undo/redo and shortcuts all run in the browser.

Python is reached only to load an image (its URL and metadata in `data`), to autosave a
draft and to save a revision: the browser sends one event at a time (`event` trigger),
and waits for the next run's `data["handled"]` to say it arrived before it sends another.

Packaging: a `st.components.v2` component whose inline loader imports our ES modules
(`frontend/*.js`, no build step) from the folder that a v1 `declare_component(path=...)`
serves, so relative `import`s between the modules work and the modules are cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components_v1
from streamlit import config

FRONTEND = Path(__file__).parent / "frontend"
_ASSETS = components_v1.declare_component("pneumolab_annotator_files", path=str(FRONTEND))

_LOADER = """
export default async function (component) {
  const url = new URL(component.data.module, window.location.href);
  const module = await import(url.href);
  return module.mount(component);
}
"""
_CSS = ":host { display: block; }"
_COMPONENT = st.components.v2.component(
    "pneumolab_annotator", js=_LOADER, css=_CSS, isolate_styles=True
)


def _version() -> str:
    digest = hashlib.sha1()
    for path in sorted(FRONTEND.glob("*.js")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def module_url() -> str:
    """Where the browser finds the entry module (absolute path on this server)."""
    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base}" if base else ""
    return f"{prefix}/component/{_ASSETS.name}/annotator.js?v={_version()}"


def annotator(data: dict[str, Any], *, key: str, on_event: Callable[[], None]) -> Any:
    """Mount the annotator with `data`; `on_event` runs (before the rerun's script) when the
    browser sends an event, readable as ``st.session_state[key]["event"]``."""
    return _COMPONENT(
        key=key,
        data={**data, "module": module_url()},
        on_event_change=on_event,
        width="stretch",
        height="content",
    )
