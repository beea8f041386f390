"""What every page shares: the open workspace and the current reader.

Kept tiny: pages call services in core/ with these, nothing else.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import streamlit as st

from core.workspace import Workspace, default_home


def _workspace_arg() -> str | None:
    # `streamlit run app/main.py -- --workspace DIR` puts DIR after the script in sys.argv.
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workspace")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.workspace


@st.cache_resource(show_spinner=False)
def _open_workspace(root: str, database_url: str | None, store: str | None) -> Workspace:
    # The environment is part of the key: one server process, one workspace per setting.
    return Workspace.open(root)


def workspace() -> Workspace:
    """The workspace named by `-- --workspace DIR`, else $PNEUMOLAB_HOME, else ~/PneumoLab."""
    root = _workspace_arg() or str(default_home())
    return _open_workspace(
        str(Path(root).expanduser().resolve()),
        os.environ.get("PNEUMOLAB_DATABASE_URL"),
        os.environ.get("PNEUMOLAB_STORE"),
    )


def reader_name() -> str:
    return st.session_state.get("sidebar_reader", "reader")


# What can turn text into markup inside one line: emphasis, code, links and images (their
# brackets), HTML, tables, strikethrough, LaTeX, and the backslash itself.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~$])")


def as_text(value: object) -> str:
    """User text (reader names, labels, comments) for an element that renders markdown:
    the characters that make markup escaped, so a name is shown as typed."""
    return _MARKDOWN.sub(r"\\\1", str(value))
