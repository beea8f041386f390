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


# Set by the login gate (app/auth.py) on every script run: the logged-in account, else None.
ACCOUNT_KEY = "auth_account"


def current_account():  # -> core.accounts.Account | None
    """The logged-in account of this browser session, None when nobody is logged in (the
    login form or the first-start "create the administrator" form is showing)."""
    return st.session_state.get(ACCOUNT_KEY)


def current_role() -> str | None:
    """The logged-in account's role (core.vocab.ROLES), None when nobody is logged in."""
    account = current_account()
    return account.role if account is not None else None


def can(permission: str) -> bool:
    """May the logged-in account do `permission` (core.vocab.PERMISSIONS)? Only for showing or
    hiding controls: the core service checks the permission itself on every call."""
    from core.vocab import ROLE_PERMISSIONS

    role = current_role()
    return role is not None and permission in ROLE_PERMISSIONS.get(role, frozenset())


def reader_name() -> str:
    """The logged-in account's name: the author of everything this session saves."""
    account = current_account()
    if account is None:  # the gate runs no page without an account
        raise RuntimeError("nobody is logged in")
    return account.name


# What can turn text into markup inside one line: emphasis, code, links and images (their
# brackets), HTML, tables, strikethrough, LaTeX, and the backslash itself.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~$])")


def as_text(value: object) -> str:
    """User text (reader names, labels, comments) for an element that renders markdown:
    the characters that make markup escaped, so a name is shown as typed."""
    return _MARKDOWN.sub(r"\\\1", str(value))
