"""Admin: accounts (add, disable/enable, reset a password, change a role), the account
settings, and the audit log with filters and a CSV download.

Every action calls a core.accounts service as the logged-in account; the service checks that
it is an admin (this page is only shown to admins, which is no check by itself)."""

from datetime import UTC, datetime, time

import streamlit as st
from ui_state import as_text, can, reader_name, workspace

from core import accounts
from core.errors import PermissionDenied
from core.vocab import AUDIT_ACTIONS, ROLES

ws = workspace()
st.title("Admin")
if not can("admin"):
    st.error("The Admin page is for admins; ask your administrator.")
    st.stop()
me = reader_name()


def _done(call, message: str) -> None:
    """Run one service call. A refusal is shown here; a success reruns the page (so every
    table shows the change) with the message on top. User text is always escaped."""
    try:
        call()
    except (ValueError, PermissionDenied) as e:
        st.error(as_text(e))
        return
    st.session_state[_FLASH] = message
    st.rerun()


_FLASH = "admin_flash"
if _FLASH in st.session_state:
    st.success(st.session_state.pop(_FLASH))


def _status(a: accounts.Account) -> str:
    if a.disabled:
        return "disabled"
    if a.locked_until is not None and a.locked_until > datetime.now(UTC):
        return f"locked until {a.locked_until:%Y-%m-%d %H:%M} UTC"
    return "active"


def _kind(a: accounts.Account) -> str:
    if a.service:
        return "service (CLI --as only)"
    ways = (["password"] if a.has_password else []) + (
        ["single sign-on"] if a.oidc_subject or a.email else []
    )
    return " + ".join(ways)


# --- accounts ---------------------------------------------------------------------------------

st.subheader("Accounts")
listed = accounts.list_accounts(ws)
st.dataframe(
    [
        {
            "name": a.name,
            "role": a.role,
            "status": _status(a),
            "login": _kind(a),
            "e-mail": a.email or "",
            "last login (UTC)": f"{a.last_login_at:%Y-%m-%d %H:%M}" if a.last_login_at else "",
        }
        for a in listed
    ],
    hide_index=True,
)

with st.form("admin_add", clear_on_submit=True):
    st.markdown("**Add an account**")
    name = st.text_input("Name", key="admin_add_name")
    role = st.selectbox("Role", ROLES, key="admin_add_role")
    service = st.checkbox(
        "Service identity (scripts: acts only through `pneumolab --as NAME`, no password, "
        "no web login)",
        key="admin_add_service",
    )
    password = st.text_input("Password", type="password", key="admin_add_password")
    repeat = st.text_input("Repeat the password", type="password", key="admin_add_repeat")
    email = st.text_input(
        "E-mail for single sign-on (optional; the login is matched by it)", key="admin_add_email"
    )
    if st.form_submit_button("Add account"):
        if not service and password != repeat:
            st.error("The two passwords differ; type them again.")
        else:
            _done(
                lambda: accounts.create_account(
                    ws,
                    name,
                    role,
                    password=(password or None) if not service else None,
                    email=email or None,
                    service=service,
                    by=me,
                ),
                f"Added {as_text(name.strip())} ({role}).",
            )

if listed:
    st.markdown("**Change an account**")
    names = [a.name for a in listed]
    chosen = st.selectbox("Account", names, key="admin_account")
    account = next(a for a in listed if a.name == chosen)
    left, middle, right = st.columns(3)
    with left:
        new_role = st.selectbox("Role", ROLES, index=ROLES.index(account.role), key="admin_role")
        if st.button("Change role", key="admin_set_role"):
            _done(
                lambda: accounts.set_role(ws, chosen, new_role, by=me),
                f"{as_text(chosen)} is now {new_role}; it applies from the next action.",
            )
    with middle:
        if account.disabled:
            if st.button("Enable", key="admin_enable"):
                _done(
                    lambda: accounts.set_disabled(ws, chosen, False, by=me),
                    f"{as_text(chosen)} is enabled again.",
                )
        elif st.button("Disable", key="admin_disable"):
            _done(
                lambda: accounts.set_disabled(ws, chosen, True, by=me),
                f"{as_text(chosen)} is disabled; its labels keep it as their author.",
            )
    with right:
        if not account.service:
            with st.form("admin_reset_form", clear_on_submit=True, border=False):
                new_password = st.text_input("New password", type="password", key="admin_new_pw")
                if st.form_submit_button("Reset password"):
                    _done(
                        lambda: accounts.reset_password(ws, chosen, new_password, by=me),
                        f"{as_text(chosen)} has a new password; its sessions have ended.",
                    )

# --- settings ---------------------------------------------------------------------------------

st.subheader("Login settings")
current = accounts.account_settings(ws)
with st.form("admin_settings"):
    wanted = {
        "max_failed_logins": st.number_input(
            "Failed logins before the account is locked", 1, 100,
            current.max_failed_logins, key="admin_max_failed",
        ),
        "lockout_minutes": st.number_input(
            "Lock time (minutes)", 1, 7 * 24 * 60, current.lockout_minutes, key="admin_lockout"
        ),
        "session_idle_minutes": st.number_input(
            "A session ends after this many idle minutes", 1, 7 * 24 * 60,
            current.session_idle_minutes, key="admin_idle",
        ),
        "annotators_see_others": st.checkbox(
            "Annotators see other readers' labels (read-only)",
            current.annotators_see_others, key="admin_see_others",
        ),
    }  # fmt: skip
    if st.form_submit_button("Save settings"):
        changed = {k: v for k, v in wanted.items() if getattr(current, k) != v}

        def save() -> None:
            for key, value in changed.items():
                accounts.set_account_setting(
                    ws, key, value if isinstance(value, bool) else int(value), by=me
                )

        _done(save, f"Saved {len(changed)} setting(s).")

# --- audit log --------------------------------------------------------------------------------

st.subheader("Audit log")
f_actor, f_action, f_since, f_until = st.columns(4)
actor = f_actor.selectbox(
    "Who", [None, *accounts.audit_actors(ws)], format_func=lambda a: "everyone" if a is None else a,
    key="admin_audit_actor",
)  # fmt: skip
action = f_action.selectbox(
    "What", [None, *AUDIT_ACTIONS], format_func=lambda a: "every action" if a is None else a,
    key="admin_audit_action",
)  # fmt: skip
since = f_since.date_input("From (UTC)", value=None, key="admin_audit_since")
until = f_until.date_input("To (UTC, inclusive)", value=None, key="admin_audit_until")
filters = {
    "actor": actor,
    "action": action,
    "since": datetime.combine(since, time.min, UTC) if since else None,
    "until": datetime.combine(until, time.max, UTC) if until else None,
}
rows = accounts.audit_rows(ws, **filters, limit=1000)
st.caption(
    f"{len(rows)} row(s), newest first" + (" (the newest 1000)" if len(rows) == 1000 else "")
)
st.dataframe(
    [
        {
            "time (UTC)": f"{r.at:%Y-%m-%d %H:%M:%S}",
            "who": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": ", ".join(f"{k}: {v}" for k, v in (r.detail or {}).items()),
        }
        for r in rows
    ],
    hide_index=True,
)
st.download_button(
    "Download CSV",
    data=accounts.audit_csv(ws, **filters),
    file_name=f"audit-log-{datetime.now(UTC):%Y%m%d-%H%M}.csv",
    mime="text/csv",
    key="admin_audit_csv",
)
