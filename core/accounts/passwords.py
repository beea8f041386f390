"""Password hashing with argon2id (argon2-cffi): slow, salted, parameters in the hash."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


@cache
def _dummy_hash() -> str:
    """Verified against when a name is not an account, so that answers take as long either
    way (made on first use: hashing is slow by design)."""
    return _hasher.hash("not a password of anyone")


def check_password(password: str) -> None:
    """ValueError saying what a password needs (nothing else is imposed)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"the password may have at most {MAX_PASSWORD_CHARS} characters")
    if "\x00" in password:
        raise ValueError("the password holds a NUL character; type another")


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches `stored_hash`; False (after the same work) otherwise."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
