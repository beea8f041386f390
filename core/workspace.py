"""A workspace: one database plus one image store, found from --workspace or PNEUMOLAB_HOME.

Default: ~/PneumoLab (a SQLite file `pneumolab.db`, a `store/` folder and the patient-key
secret `secret.key` inside it). PNEUMOLAB_DATABASE_URL points the database elsewhere (e.g.
PostgreSQL), PNEUMOLAB_STORE the image store (e.g. a shared mount) and PNEUMOLAB_SECRET_FILE
the secret (one file shared by every app host of one database), for several readers at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.imaging.deid import create_secret_file, new_salt, read_secret_file, secret_fingerprint
from core.vocab import DEFAULT_LABELS
from db.engine import make_engine, make_session_factory, sqlite_url, write_locked
from db.migrate import schema_lock, upgrade
from db.models import Image, LabelClass, Reader, Setting

DEFAULT_READER = "reader"
SECRET_FILE_ENV = "PNEUMOLAB_SECRET_FILE"
SECRET_FILE_NAME = "secret.key"
# Where versions before the key file kept the secret (moved out on open).
_LEGACY_SALT_SETTING = "deid_salt"
# Which secret made this database's patient keys (secret_fingerprint; reveals nothing).
_SECRET_CHECK_SETTING = "deid_secret_check"


class WorkspaceSecretError(OSError):
    """The patient-key secret is missing, unreadable or not the one that made this database's
    patient keys: opening would silently give every patient a new key. An OSError, so that
    callers reporting a workspace they cannot open (the CLI) report this too."""


def default_home() -> Path:
    env = os.environ.get("PNEUMOLAB_HOME")
    return Path(env).expanduser() if env else Path.home() / "PneumoLab"


@dataclass
class Workspace:
    root: Path
    database_url: str
    store_dir: Path
    secret_file: Path | None = None  # None: root / secret.key
    _engine: Engine | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: str | Path | None = None) -> Workspace:
        """Open (creating and migrating if needed) the workspace at `root` or the default.

        Safe when several processes open one workspace at once: they migrate and seed it one
        after the other. Raises WorkspaceSecretError when the patient-key secret is missing
        or does not fit the database.
        """
        root = Path(root).expanduser() if root else default_home()
        root.mkdir(parents=True, exist_ok=True)
        url = os.environ.get("PNEUMOLAB_DATABASE_URL") or sqlite_url(root / "pneumolab.db")
        store_env = os.environ.get("PNEUMOLAB_STORE")
        store = Path(store_env).expanduser() if store_env else root / "store"
        store.mkdir(parents=True, exist_ok=True)
        secret_env = os.environ.get(SECRET_FILE_ENV)
        ws = cls(
            root=root.resolve(),
            database_url=url,
            store_dir=store.resolve(),
            secret_file=Path(secret_env).expanduser().resolve() if secret_env else None,
        )
        try:
            with schema_lock(ws.engine):
                upgrade(ws.engine)
                ws._seed()
                ws._settle_secret()
        except BaseException:
            ws.dispose()
            raise
        return ws

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def write_sessions(self) -> sessionmaker[Session]:
        """Sessions whose transaction holds the write lock from its first statement (SQLite
        BEGIN IMMEDIATE), for a service that reads, then writes what it read."""
        return make_session_factory(write_locked(self.engine))

    @property
    def models_dir(self) -> Path:
        path = self.root / "models"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def secret_path(self) -> Path:
        """The key file holding the patient-key secret (PNEUMOLAB_SECRET_FILE at open)."""
        return self.secret_file or self.root / SECRET_FILE_NAME

    def _seed(self) -> None:
        # Insert-if-missing; under schema_lock nobody else seeds, but a process that does not
        # take the lock may still insert the same row first: then look again.
        for attempt in range(2):
            try:
                with self.sessions.begin() as s:
                    if s.scalar(select(LabelClass.id).limit(1)) is None:
                        s.add_all(LabelClass(name=n, color=c) for n, c in DEFAULT_LABELS.items())
                    if s.scalar(select(Reader.id).limit(1)) is None:
                        s.add(Reader(name=DEFAULT_READER, role="admin"))
                return
            except IntegrityError:
                if attempt:
                    raise

    def _settle_secret(self) -> None:
        """Make sure the patient-key secret is in its key file, and only there.

        A fresh database gets a new secret. A database of an older version keeps its secret,
        moved from the settings table to the key file, so that its patient keys stay the
        same. A database whose patient keys were made with a secret that cannot be found is
        refused.
        """
        path = self.secret_path
        with self.sessions() as s:
            legacy = s.get(Setting, _LEGACY_SALT_SETTING)
            legacy = legacy.value if legacy else None
            check = s.get(Setting, _SECRET_CHECK_SETTING)
            check = check.value if check else None
            has_images = s.scalar(select(Image.id).limit(1)) is not None
        secret = self._read_secret(path)
        if legacy is not None:
            secret = secret or create_secret_file(path, legacy)
            if secret != legacy:
                raise WorkspaceSecretError(
                    f"cannot open the workspace: {path} holds another patient-key secret than "
                    f"the one in this database, which made its patient keys. Remove or move "
                    f"{path} (the database's own secret is then moved there), or set "
                    f"{SECRET_FILE_ENV} to another file"
                )
            self._store_check_and_forget_legacy(secret_fingerprint(secret))
            return
        if secret is None:
            if check is not None or has_images:
                raise WorkspaceSecretError(
                    f"cannot open the workspace: its patient-key secret is missing ({path} "
                    f"does not exist) and its database already holds images keyed with it. "
                    f"Restore the key file, or set {SECRET_FILE_ENV} to the file that holds "
                    f"it; a new secret would silently give every patient a new key"
                )
            secret = create_secret_file(path, new_salt())
        elif check is not None and check != secret_fingerprint(secret):
            raise WorkspaceSecretError(
                f"cannot open the workspace: the patient-key secret in {path} is not the one "
                f"that made this database's patient keys; set {SECRET_FILE_ENV} to the key "
                f"file of this database"
            )
        if check is None:
            with self.sessions.begin() as s:
                s.merge(Setting(key=_SECRET_CHECK_SETTING, value=secret_fingerprint(secret)))

    @staticmethod
    def _read_secret(path: Path) -> str | None:
        try:
            return read_secret_file(path)
        except (OSError, ValueError) as e:
            raise WorkspaceSecretError(
                f"cannot read the patient-key secret ({e}); check {path} or {SECRET_FILE_ENV}"
            ) from e

    def _store_check_and_forget_legacy(self, check: str) -> None:
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if sqlite:
                # Overwrite the deleted row's bytes instead of leaving them in a free cell.
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
                conn.commit()
            try:
                conn.execute(delete(Setting).where(Setting.key == _SECRET_CHECK_SETTING))
                conn.execute(
                    Setting.__table__.insert().values(key=_SECRET_CHECK_SETTING, value=check)
                )
                conn.execute(delete(Setting).where(Setting.key == _LEGACY_SALT_SETTING))
                conn.commit()
            finally:
                conn.rollback()
                if sqlite:
                    conn.exec_driver_sql("PRAGMA secure_delete=OFF")
                    # Copy the overwritten page into the database file and empty the WAL,
                    # which still held the old page (best effort: a reader elsewhere may
                    # delay it; the next checkpoint then overwrites it).
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    conn.commit()

    @cached_property
    def salt(self) -> str:
        """The patient-key secret (HMAC key of every pseudonym), read from its key file."""
        secret = self._read_secret(self.secret_path)
        if secret is None:
            raise WorkspaceSecretError(
                f"the patient-key secret {self.secret_path} has gone; restore it, or set "
                f"{SECRET_FILE_ENV} to the file that holds it"
            )
        return secret

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
