"""The login gate: who is using this browser session, and the forms that decide it.

Sessions live on the server (core.accounts: a random token, only its hash stored, idle
expiry). The browser keeps the token in a signed HttpOnly cookie, so a reload stays logged in
and no page script can read it. A Streamlit script cannot set a response header, so the cookie
is set by a small route of this app (`routes()`, mounted by app/main.py's st.App): after a
login the script hands the browser a one-time ticket (30 seconds, single use, kept in this
process's memory), the browser posts it to /_pneumolab/session, and that response sets the
cookie. The token itself never appears in a URL or in the page.

Single sign-on is Streamlit's own st.login (OpenID Connect, configured in the [auth] section
of .streamlit/secrets.toml); the identity it returns is matched to an account by
core.accounts.account_for_oidc, and then gets a server-side session like a password login.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path

import streamlit as st
from ui_state import ACCOUNT_KEY, as_text

from core.workspace import Workspace

COOKIE = "pneumolab_session"
COOKIE_MAX_AGE = 30 * 24 * 3600  # the browser's bound; the server's idle expiry ends it first
SESSION_ROUTE = "/_pneumolab/session"
LOGOUT_ROUTE = "/_pneumolab/logout"
SSO_LOGOUT_URL = "/auth/logout"  # Streamlit's st.logout endpoint
KEY_FILE = "session_cookie.key"
TICKET_SECONDS = 30.0

TOKEN_KEY = "auth_token"
SSO_KEY = "auth_sso"
TICKET_KEY = "auth_ticket"
ENDED_KEY = "auth_ended"  # why the last session ended: "logout" / "expired"
NOTICE_KEY = "auth_notice"  # the same, to say once on the login form
CLEAR_KEY = "auth_clear_cookie"  # "password" / "sso": clear the cookie in the browser

# --- the cookie ---------------------------------------------------------------------------------


def _key(ws: Workspace) -> str:
    """The workspace's cookie-signing key (a file next to the database, made on first use)."""
    path = Path(ws.root) / KEY_FILE
    if not path.exists():
        # Written aside, then linked into place: two servers starting at once agree on one
        # key, and nobody reads a half-written file.
        tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _serializer(ws: Workspace):
    from itsdangerous import URLSafeSerializer

    return URLSafeSerializer(_key(ws), salt="pneumolab-session")


def cookie_value(ws: Workspace, token: str, *, sso: bool = False) -> str:
    """The signed cookie value holding a session token (also used by the browser tests)."""
    return _serializer(ws).dumps({"t": token, "sso": sso, "at": int(time.time())})


def read_cookie(ws: Workspace, value: str | None) -> dict | None:
    """The payload of a cookie value, None when absent or not signed by this workspace."""
    if not value:
        return None
    from itsdangerous import BadSignature

    try:
        payload = _serializer(ws).loads(value)
    except BadSignature:
        return None
    return payload if isinstance(payload, dict) and isinstance(payload.get("t"), str) else None


# --- one-time tickets and the routes that set / clear the cookie --------------------------------

_tickets: dict[str, tuple[float, str]] = {}
_tickets_lock = threading.Lock()


def _issue_ticket(value: str) -> str:
    ticket = secrets.token_urlsafe(24)
    now = time.monotonic()
    with _tickets_lock:
        for old in [t for t, (at, _) in _tickets.items() if now - at > TICKET_SECONDS]:
            del _tickets[old]
        _tickets[ticket] = (now, value)
    return ticket


def _redeem_ticket(ticket: str) -> str | None:
    with _tickets_lock:
        entry = _tickets.pop(ticket, None)
    if entry is None or time.monotonic() - entry[0] > TICKET_SECONDS:
        return None
    return entry[1]


def _same_origin(request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not sent by a browser page of another site
    from urllib.parse import urlsplit

    return urlsplit(origin).netloc == request.headers.get("host")


def _https(request) -> bool:
    """Served over HTTPS (directly, or behind a proxy that says so): the cookie is then
    only ever sent over HTTPS."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


async def _session_route(request):
    from starlette.responses import Response

    if not _same_origin(request):
        return Response("cross-site request refused", status_code=403)
    value = _redeem_ticket((await request.body()).decode("ascii", "replace").strip())
    if value is None:
        return Response("unknown or expired login ticket; log in again", status_code=400)
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        value,
        max_age=COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_https(request),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _logout_route(request):
    from starlette.responses import Response

    if not _same_origin(request):
        return Response("cross-site request refused", status_code=403)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


def routes() -> list:
    """The routes app/main.py mounts next to Streamlit's own (st.App)."""
    from starlette.routing import Route

    return [
        Route(SESSION_ROUTE, _session_route, methods=["POST"]),
        Route(LOGOUT_ROUTE, _logout_route, methods=["POST"]),
    ]


def _browser_js(code: str) -> None:
    st.html(f"<script>{code}</script>", unsafe_allow_javascript=True)


def _set_cookie_in_browser(ticket: str) -> None:
    _browser_js(
        f"fetch({json.dumps(SESSION_ROUTE)}, {{method: 'POST', credentials: 'same-origin',"
        f" body: {json.dumps(ticket)}}});"
    )


def _clear_cookie_in_browser(sso: bool) -> None:
    then = f".then(() => window.location.assign({json.dumps(SSO_LOGOUT_URL)}))" if sso else ""
    post = "{method: 'POST', credentials: 'same-origin'}"
    _browser_js(f"fetch({json.dumps(LOGOUT_ROUTE)}, {post}){then};")


# --- single sign-on -----------------------------------------------------------------------------


def sso_configured() -> bool:
    """Is OpenID Connect set up ([auth] in .streamlit/secrets.toml)?"""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, OSError, ValueError):
        return False
    except Exception:  # noqa: BLE001 - Streamlit raises its own error when no secrets file
        return False


def _sso_user() -> dict | None:
    if not sso_configured():
        return None
    try:
        user = st.user.to_dict()
    except Exception:  # noqa: BLE001 - st.user without a script context or auth section
        return None
    return user if user.get("is_logged_in") else None


# --- the gate -----------------------------------------------------------------------------------


def _begin(ws: Workspace, account, *, sso: bool) -> None:
    """Start a server-side session for `account` and let the browser keep it."""
    from core.accounts import start_session

    try:
        token = start_session(ws, account)
    except ValueError:  # disabled a moment after its password was checked
        st.error("This account cannot log in now; ask your administrator.")
        st.stop()
    st.session_state[TOKEN_KEY] = token
    st.session_state[SSO_KEY] = sso
    st.session_state[ACCOUNT_KEY] = account
    st.session_state[TICKET_KEY] = _issue_ticket(cookie_value(ws, token, sso=sso))
    st.session_state.pop(ENDED_KEY, None)


def _forget(reason: str) -> None:
    sso = bool(st.session_state.get(SSO_KEY))
    for key in (TOKEN_KEY, SSO_KEY, ACCOUNT_KEY, TICKET_KEY):
        st.session_state.pop(key, None)
    st.session_state[ENDED_KEY] = st.session_state[NOTICE_KEY] = reason
    st.session_state[CLEAR_KEY] = "sso" if sso else "password"


def logged_in_account(ws: Workspace):
    """The account of this browser session, from its token (session state, else the cookie);
    None when there is none, or it has expired, ended or been disabled."""
    from core.accounts import session_account

    token = st.session_state.get(TOKEN_KEY)
    if token is None and st.session_state.get(ENDED_KEY) != "logout":
        payload = read_cookie(ws, st.context.cookies.get(COOKIE))
        if payload is not None:
            account = session_account(ws, payload["t"])
            if account is not None:
                st.session_state[TOKEN_KEY] = payload["t"]
                st.session_state[SSO_KEY] = bool(payload.get("sso"))
                st.session_state[ACCOUNT_KEY] = account
                return account
            user = _sso_user()
            iat = (user or {}).get("iat")
            if user and isinstance(iat, int) and iat > payload["at"]:
                return None  # a new single sign-on after the old session: its cookie is replaced
            # The single sign-on that made this expired session ends with it.
            st.session_state[SSO_KEY] = bool(payload.get("sso") and user)
            _forget("expired")
        return None
    if token is None:
        return None
    account = session_account(ws, token)
    if account is None:
        _forget("expired")
        return None
    st.session_state[ACCOUNT_KEY] = account
    return account


def gate(ws: Workspace):
    """Who is logged in; when nobody, show the form that fits and return None.

    Runs before any page. Returns the account, or None after drawing the first-start form
    ("create the administrator"), the login form, or the single sign-on refusal.
    """
    try:
        from core import accounts
    except ImportError:
        st.error("Accounts are not available in this installation; reinstall PneumoLab.")
        return None

    if not accounts.has_accounts(ws):
        st.session_state.pop(ACCOUNT_KEY, None)
        _first_start(ws)
        return None

    account = logged_in_account(ws)
    if account is not None:
        ticket = st.session_state.pop(TICKET_KEY, None)
        if ticket is not None:
            _set_cookie_in_browser(ticket)
        return account

    clear = st.session_state.pop(CLEAR_KEY, None)
    if clear is not None:
        _clear_cookie_in_browser(sso=clear == "sso" and _sso_user() is not None)
        if clear == "sso" and _sso_user() is not None:
            st.info("Logging out of single sign-on…")
            return None

    user = _sso_user()
    refused = st.session_state.get("auth_sso_refused")
    if user is not None and refused is not None and refused[0] == user.get("sub"):
        _no_sso_account(refused[1])  # asked once: the audit log has it already
        return None
    if user is not None:
        try:
            account = accounts.account_for_oidc(
                ws, subject=str(user.get("sub") or ""), email=user.get("email")
            )
        except accounts.LoginRefused as e:
            _no_sso_account(str(e))
            return None
        if account is None:
            _no_sso_account(
                "No PneumoLab account matches your single sign-on identity. Ask your "
                "administrator to add you (by e-mail) and give you a role."
            )
            return None
        _begin(ws, account, sso=True)
        st.rerun()

    _login_form(ws)
    return None


def _no_sso_account(message: str) -> None:
    user = _sso_user() or {}
    st.session_state["auth_sso_refused"] = (user.get("sub"), message)
    st.title("PneumoLab")
    st.error(message)
    if st.button("Log out of single sign-on", key="auth_sso_logout"):
        st.logout()


def _login_form(ws: Workspace) -> None:
    from core import accounts

    st.title("PneumoLab")
    notice = st.empty()
    with st.form("auth_login", enter_to_submit=True):
        st.subheader("Log in")
        name = st.text_input("Account name", key="auth_login_name")
        password = st.text_input("Password", type="password", key="auth_login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    ended = (
        st.session_state.pop(NOTICE_KEY, None) if submitted else st.session_state.get(NOTICE_KEY)
    )
    if ended == "logout" and not submitted:
        notice.info("You are logged out.")
    elif ended == "expired" and not submitted:
        notice.warning("Your session has expired or was ended; log in again.")
    if submitted:
        try:
            account = accounts.authenticate(ws, name.strip(), password)
        except accounts.LoginRefused as e:
            st.error(as_text(e))
        else:
            _begin(ws, account, sso=False)
            st.rerun()
    if sso_configured():
        st.divider()
        if st.button("Log in with single sign-on", key="auth_sso_login"):
            st.login()


def _first_start(ws: Workspace) -> None:
    from core import accounts

    st.title("Welcome to PneumoLab")
    st.write(
        "This workspace has no account yet. Create the administrator: the account that adds "
        "the others and gives them their roles. This form is shown only once."
    )
    with st.form("auth_first_admin"):
        name = st.text_input("Administrator name", key="auth_first_name")
        password = st.text_input("Password", type="password", key="auth_first_password")
        again = st.text_input("Password again", type="password", key="auth_first_again")
        submitted = st.form_submit_button("Create the administrator", type="primary")
    if not submitted:
        return
    if password != again:
        st.error("The two passwords differ; type the same password twice.")
        return
    try:
        accounts.create_account(ws, name.strip(), "admin", password=password)
        account = accounts.authenticate(ws, name.strip(), password)
    except (ValueError, accounts.LoginRefused, accounts.PermissionDenied) as e:
        st.error(as_text(e))
        return
    _begin(ws, account, sso=False)
    st.rerun()


def logout(ws: Workspace) -> None:
    """End this browser session's login (the Logout button's callback)."""
    from core.accounts import end_session

    token = st.session_state.get(TOKEN_KEY)
    if token is not None:
        end_session(ws, token)
    _forget("logout")


def sidebar(ws: Workspace, account) -> None:
    """The logged-in account in the sidebar: name, role, Logout."""
    st.markdown(f"**{as_text(account.name)}** · {as_text(account.role)}")
    st.button("Log out", key="auth_logout", on_click=logout, args=(ws,))
