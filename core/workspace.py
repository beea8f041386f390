"""A workspace: one database plus one image store, found from --workspace or PNEUMOLAB_HOME.

Default: ~/PneumoLab (a SQLite file `pneumolab.db` and a `store/` folder inside it).
PNEUMOLAB_DATABASE_URL points the database elsewhere (e.g. PostgreSQL) and PNEUMOLAB_STORE
the image store (e.g. a shared mount), for several readers at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from core.imaging.deid import new_salt
from core.vocab import DEFAULT_LABELS
from db.engine import make_engine, make_session_factory, sqlite_url
from db.migrate import upgrade
from db.models import LabelClass, Reader, Setting

DEFAULT_READER = "reader"


def default_home() -> Path:
    env = os.environ.get("PNEUMOLAB_HOME")
    return Path(env).expanduser() if env else Path.home() / "PneumoLab"


@dataclass
class Workspace:
    root: Path
    database_url: str
    store_dir: Path
    _engine: Engine | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: str | Path | None = None) -> Workspace:
        """Open (creating and migrating if needed) the workspace at `root` or the default."""
        root = Path(root).expanduser() if root else default_home()
        root.mkdir(parents=True, exist_ok=True)
        url = os.environ.get("PNEUMOLAB_DATABASE_URL") or sqlite_url(root / "pneumolab.db")
        store_env = os.environ.get("PNEUMOLAB_STORE")
        store = Path(store_env).expanduser() if store_env else root / "store"
        store.mkdir(parents=True, exist_ok=True)
        ws = cls(root=root.resolve(), database_url=url, store_dir=store.resolve())
        upgrade(ws.engine)
        ws._seed()
        return ws

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @property
    def models_dir(self) -> Path:
        path = self.root / "models"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _seed(self) -> None:
        with self.sessions.begin() as s:
            if s.get(Setting, "deid_salt") is None:
                s.add(Setting(key="deid_salt", value=new_salt()))
            if s.scalar(select(LabelClass.id).limit(1)) is None:
                s.add_all(LabelClass(name=n, color=c) for n, c in DEFAULT_LABELS.items())
            if s.scalar(select(Reader.id).limit(1)) is None:
                s.add(Reader(name=DEFAULT_READER, role="admin"))

    @cached_property
    def salt(self) -> str:
        with self.sessions() as s:
            return s.get(Setting, "deid_salt").value

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
