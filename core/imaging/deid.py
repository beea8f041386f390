"""De-identification: identifiers become salted hashes and never leave the loader in clear.

The salt (the workspace's patient-key secret) lives in a key file outside the database, so a
copy of the database alone does not let anyone recompute numeric patient ids.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path


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


def secret_fingerprint(salt: str) -> str:
    """A value that tells which secret made a database's patient keys without revealing it
    (an HMAC of a fixed text under the secret; the secret is 256 random bits)."""
    return hmac.new(salt.encode(), b"pneumolab: patient-key secret check", "sha256").hexdigest()


def read_secret_file(path: Path) -> str | None:
    """The secret in `path`, None if there is no such file. Raises OSError if it cannot be
    read, ValueError if it is empty."""
    try:
        secret = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a PneumoLab secret file (not plain text)") from e
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def create_secret_file(path: Path, salt: str) -> str:
    """Write `salt` to a new key file at `path`, readable by its owner only (0600), unless a
    file is there already; returns the secret the file holds then (another process's, if it
    created the file first). Never leaves a partly written key file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(salt + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic and never replaces: the first process's secret wins
        except FileExistsError:
            pass
        except OSError:
            _create_exclusive(path, salt)  # a file system without hard links
    finally:
        os.unlink(tmp)
    return read_secret_file(path)


def _create_exclusive(path: Path, salt: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(salt + "\n")
        f.flush()
        os.fsync(f.fileno())
