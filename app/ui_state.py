"""What every page shares: the open workspace and the current reader.

Kept tiny: pages call services in core/ with these, nothing else.
"""

from __future__ import annotations

import argparse
import sys

import streamlit as st

from core.workspace import Workspace


def _workspace_arg() -> str | None:
    # `streamlit run app/main.py -- --workspace DIR` puts DIR after the script in sys.argv.
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--workspace")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.workspace


@st.cache_resource(show_spinner=False)
def _open_workspace(root: str | None) -> Workspace:
    return Workspace.open(root)


def workspace() -> Workspace:
    return _open_workspace(_workspace_arg())


def reader_name() -> str:
    return st.session_state.get("sidebar_reader", "reader")
