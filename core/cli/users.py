"""`pneumolab users ...` (accounts) and the global `--as NAME` (who a command acts for).

The rule (README "Accounts and roles"): once a workspace has accounts, every command that
changes data or writes it out (import, export, train, compare, activate, users except
`list`) needs `--as NAME`. NAME must be an account: a person's account is asked for its
password (a prompt on a terminal, else one line of stdin; never a flag, never an environment
variable), a service identity (`users add NAME --role admin --service`, made by an admin) is
not, since it has no password and cannot sign in to the web app. The role is then checked by
the core services, as for the web app. Before the first account exists nothing is asked.

Passwords read from stdin (when it is not a terminal), one line each, in this order: the
--as account's, then the new one (`users add`, `users reset-password`).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from core.accounts import (
    Account,
    LoginRefused,
    audit,
    authenticate,
    create_account,
    get_account,
    has_accounts,
    list_accounts,
    reset_password,
    set_disabled,
    set_role,
)
from core.cli.models import BadInput
from core.vocab import ROLES
from core.workspace import Workspace

# Commands that change data or write it out: --as is required once accounts exist.
CHANGING_COMMANDS = frozenset({"import", "export", "train", "compare", "activate", "users"})


def read_password(prompt: str, *, confirm: bool = False) -> str:
    """A password from the terminal (not echoed) or, when stdin is not a terminal, from the
    next line of stdin. BadInput when there is none."""
    if sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat it: ") != password:
            raise BadInput("the two passwords differ; nothing was changed")
        return password
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise BadInput(
            f"{prompt.strip().rstrip(':')}: no password on stdin; type it at a terminal, or "
            "pipe it in (one line per password)"
        )
    return line.removesuffix("\n").removesuffix("\r")


def changes_data(args: argparse.Namespace) -> bool:
    if args.command == "users":
        return args.users_command != "list"
    return args.command in CHANGING_COMMANDS


def acting_account(ws: Workspace, args: argparse.Namespace) -> str | None:
    """The account name this command acts for (see the module's rule), checked; None when
    no --as is given and none is needed. BadInput saying what to do otherwise."""
    name = getattr(args, "as_account", None)
    if name is None:
        if changes_data(args) and has_accounts(ws):
            raise BadInput(
                f"this workspace has accounts: say which one `{args.command}` acts for, e.g. "
                f"pneumolab --as NAME {args.command} ... (a person's password is then asked "
                "for; scripts use a service identity an admin made)"
            )
        return None
    if not has_accounts(ws):
        return name  # first start: nothing to check against yet
    account = get_account(ws, name)
    if account is not None and account.service:
        if account.disabled:
            raise BadInput(f"--as {name}: the service identity is disabled; an admin enables it")
        audit(ws, account, "login", "", {"via": "cli", "service": True})
        return account.name
    password = read_password(f"Password for {name}: ")
    try:
        return authenticate(ws, name, password, via="cli").name
    except LoginRefused as e:
        raise BadInput(f"--as {name}: {e}") from e


def _account_json(a: Account) -> dict:
    return {
        "name": a.name,
        "role": a.role,
        "disabled": a.disabled,
        "service": a.service,
        "password": a.has_password,
        "email": a.email,
        "oidc_linked": a.oidc_subject is not None,
        "locked_until": a.locked_until.isoformat() if a.locked_until else None,
        "last_login_at": a.last_login_at.isoformat() if a.last_login_at else None,
    }


def cmd_users(ws: Workspace, args: argparse.Namespace) -> dict:
    by = args.actor
    try:
        match args.users_command:
            case "list":
                accounts = list_accounts(ws)
                return {"accounts": [_account_json(a) for a in accounts], "count": len(accounts)}
            case "add":
                password = None
                if not args.service and not args.no_password:
                    password = read_password(f"New password for {args.name}: ", confirm=True)
                account = create_account(
                    ws,
                    args.name,
                    args.role,
                    password=password,
                    email=args.email,
                    oidc_subject=args.oidc_subject,
                    service=args.service,
                    by=by,
                )
                return {"added": _account_json(account)}
            case "disable" | "enable":
                disabled = args.users_command == "disable"
                return {"account": _account_json(set_disabled(ws, args.name, disabled, by=by))}
            case "set-role":
                return {"account": _account_json(set_role(ws, args.name, args.role, by=by))}
            case "reset-password":
                if get_account(ws, args.name) is None:
                    raise BadInput(f"{args.name!r} is not an account of this workspace")
                password = read_password(f"New password for {args.name}: ", confirm=True)
                return {"account": _account_json(reset_password(ws, args.name, password, by=by))}
    except ValueError as e:
        raise BadInput(str(e)) from e
    raise BadInput(f"unknown users command {args.users_command!r}")


def add_users_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="users_command", required=True)
    add = sub.add_parser(
        "add",
        help="add an account (the first one, an admin, needs no --as; its password is read "
        "from a prompt or stdin)",
    )
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--email", help="e-mail an OpenID Connect login is matched by")
    add.add_argument("--oidc-subject", help="the OpenID Connect subject of this person")
    add.add_argument(
        "--service",
        action="store_true",
        help="a service identity for scripts: no password, no web login, only --as on the CLI",
    )
    add.add_argument(
        "--no-password",
        action="store_true",
        help="single sign-on only (with --email or --oidc-subject): no password is asked",
    )
    sub.add_parser("list", help="list the accounts")
    for name, text in (("disable", "disable an account"), ("enable", "enable it again")):
        sub.add_parser(name, help=text).add_argument("name")
    role = sub.add_parser("set-role", help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    sub.add_parser(
        "reset-password", help="give an account a new password (read from a prompt or stdin)"
    ).add_argument("name")
