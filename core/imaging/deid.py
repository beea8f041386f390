"""De-identification: identifiers become salted hashes and never leave the loader in clear."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_salt() -> str:
    return secrets.token_hex(32)


def pseudonymise(value: str | None, salt: str) -> str | None:
    """Keyed hash of an identifier (HMAC-SHA256, hex). Empty values stay None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    return hmac.new(salt.encode(), text.encode(), hashlib.sha256).hexdigest()
