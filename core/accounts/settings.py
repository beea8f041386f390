"""Account settings, kept in the workspace's settings table (defaults written by migration
0005): failed logins before a lock, how long a lock lasts, how long an idle session lives, and
whether annotators see other readers' labels (read-only)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from core.workspace import Workspace
from db.models import Setting


@dataclass(frozen=True)
class AccountSettings:
    max_failed_logins: int = 5
    lockout_minutes: int = 15
    session_idle_minutes: int = 60
    annotators_see_others: bool = True


# key -> (smallest, largest) allowed; booleans are "true"/"false".
LIMITS: dict[str, tuple[int, int]] = {
    "max_failed_logins": (1, 100),
    "lockout_minutes": (1, 7 * 24 * 60),
    "session_idle_minutes": (1, 7 * 24 * 60),
}
KEYS = tuple(f.name for f in fields(AccountSettings))


def _parse(key: str, text: str, default):
    if isinstance(default, bool):
        return text.strip().lower() in ("1", "true", "yes", "on")
    try:
        value = int(text)
    except ValueError:
        return default
    low, high = LIMITS[key]
    return value if low <= value <= high else default


def account_settings(ws: Workspace) -> AccountSettings:
    """The workspace's account settings; a missing or unreadable value takes its default."""
    defaults = AccountSettings()
    with ws.sessions() as s:
        values = {}
        for key in KEYS:
            row = s.get(Setting, key)
            if row is not None:
                values[key] = _parse(key, row.value, getattr(defaults, key))
    return AccountSettings(**values)


def check_setting(key: str, value) -> str:
    """The stored text of a setting value; ValueError saying what is allowed."""
    if key not in KEYS:
        raise ValueError(f"unknown account setting {key!r}; one of {', '.join(KEYS)}")
    if isinstance(getattr(AccountSettings(), key), bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} is true or false")
        return "true" if value else "false"
    low, high = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}")
    return str(value)
