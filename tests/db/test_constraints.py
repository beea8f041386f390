"""The database itself refuses a name outside the vocabulary (CHECK constraints added by
migration 0003, and by later ones for later columns), on SQLite and on PostgreSQL; the names it
allows are exactly core.vocab's; and an existing workspace upgrades to 0003 with every row,
index and foreign key kept, or, when it cannot, changes nothing."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from core import vocab
from db.engine import make_engine, sqlite_url
from db.migrate import alembic_config, upgrade
from db.models import (
    AnnotationRevision,
    Base,
    Image,
    ImageFinding,
    Job,
    Reader,
    Review,
)

# (table, column) -> what core.vocab says the column may hold, for every column whose names
# the database checks at head. A migration that adds such a constraint adds its line here.
VOCABULARY: dict[tuple[str, str], tuple[str, ...]] = {
    ("image_findings", "finding"): tuple(vocab.FINDINGS),
    ("annotation_revisions", "source"): vocab.REVISION_SOURCES,
    ("images", "status"): vocab.STATUSES,
    ("reviews", "decision"): vocab.REVIEW_DECISIONS,
    ("jobs", "state"): vocab.JOB_STATES,
    ("readers", "role"): vocab.ROLES,
    ("annotation_revisions", "origin"): vocab.REVISION_ORIGINS,  # migration 0004
}
COLUMNS = list(VOCABULARY)
# The columns migration 0003 constrains (the tests of that migration look at these only).
ADDED_BY_0003 = [
    ("image_findings", "finding"),
    ("annotation_revisions", "source"),
    ("images", "status"),
    ("reviews", "decision"),
    ("jobs", "state"),
    ("readers", "role"),
]
# The revision before the constraints, and the one that adds them.
BEFORE, CONSTRAINTS = "0002", "0003"
# Indexes created by 0001 and 0002 that a table recreate on SQLite must carry over.
INDEXES = {
    "images": {
        "ix_images_imported_at_id",
        "ix_images_status_imported",
        "ix_images_modality_imported",
        "ix_images_status_modality_imported",
        "ix_images_patient_key",
    },
    "jobs": {"ix_jobs_state_id"},
    "annotation_revisions": {"ix_revisions_image_reader"},
    "image_findings": {"ix_findings_image_reader"},
}


def constraint_name(table: str, column: str) -> str:
    return f"ck_{table}_{column}"


# --- databases ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request) -> str:
    return request.param


@pytest.fixture
def database_url(request, dialect, tmp_path) -> str:
    """An empty database: a SQLite file, or a fresh database on the shared PostgreSQL server."""
    if dialect == "sqlite":
        return sqlite_url(tmp_path / "pneumolab.db")
    return request.getfixturevalue("fresh_postgres_database")("ck")


@pytest.fixture
def engine(database_url) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def ws(request, dialect, database_url, monkeypatch, tmp_path):
    """A workspace opened the way the app opens one (migrated to head, seeded)."""
    if dialect == "sqlite":
        yield request.getfixturevalue("workspace")
        return
    from core.workspace import Workspace

    monkeypatch.setenv("PNEUMOLAB_DATABASE_URL", database_url)
    opened = Workspace.open(tmp_path / "ws")
    yield opened
    opened.dispose()


# --- rows -----------------------------------------------------------------------------------

_numbers = itertools.count(1)


def _image(**kw) -> Image:
    n = next(_numbers)
    fields = dict(
        content_hash=uuid.uuid4().hex,
        storage_path=f"images/{n}.png",
        width=8,
        height=8,
        modality="CR",
        source_format="png",
        bits_stored=8,
        photometric="MONOCHROME2",
        display_name=f"IMG-{n:06d}",
    )
    return Image(**{**fields, **kw})


def _parents(s: Session) -> tuple[int, int]:
    """An image and a reader for the rows that refer to them."""
    image, reader = _image(), Reader(name=f"reader-{next(_numbers)}")
    s.add_all([image, reader])
    s.flush()
    return image.id, reader.id


def _row(table: str, image_id: int, reader_id: int, **values):
    """A valid row of `table` (its vocabulary column at the model's default unless given)."""
    n = next(_numbers)
    make = {
        "images": lambda: _image(),
        "readers": lambda: Reader(name=f"reader-{n}"),
        "jobs": lambda: Job(kind="train"),
        "reviews": lambda: Review(image_id=image_id, reader_id=reader_id, decision="accepted"),
        "image_findings": lambda: ImageFinding(
            image_id=image_id, reader_id=reader_id, finding="pneumonia"
        ),
        "annotation_revisions": lambda: AnnotationRevision(
            image_id=image_id, reader_id=reader_id, revision=n, image_width=8, image_height=8
        ),
    }
    row = make[table]()
    for column, value in values.items():
        setattr(row, column, value)
    return row


def _bogus(values: tuple[str, ...]) -> list[str]:
    # A made-up name, nothing at all, and a display-style spelling of a real name.
    return ["bogus", "", values[0].upper()]


# --- the constraints ------------------------------------------------------------------------


def test_each_constraint_allows_exactly_the_vocabulary(ws):
    """Drift: read each constraint back from the live database and compare with core.vocab."""
    inspector = inspect(ws.engine)
    for (table, column), values in VOCABULARY.items():
        checks = {c["name"]: c["sqltext"] for c in inspector.get_check_constraints(table)}
        sql = checks.get(constraint_name(table, column))
        assert sql is not None, f"{table} has no {constraint_name(table, column)}: {checks}"
        assert column in sql
        # SQLite keeps "x IN ('a', 'b')", PostgreSQL "x = ANY (ARRAY['a'::varchar, ...])".
        assert set(re.findall(r"'([^']*)'", sql)) == set(values), (table, column, sql)


@pytest.mark.parametrize(("table", "column"), COLUMNS, ids=[f"{t}.{c}" for t, c in COLUMNS])
def test_every_vocabulary_name_is_stored_and_anything_else_refused(ws, table, column):
    values = VOCABULARY[(table, column)]
    rows = Base.metadata.tables[table]

    def refused():
        return pytest.raises(IntegrityError, match=constraint_name(table, column))

    with ws.sessions.begin() as s:
        image_id, reader_id = _parents(s)
        stored = [_row(table, image_id, reader_id, **{column: v}) for v in values]
        s.add_all(stored)
    with ws.sessions() as s:
        got = s.scalars(select(rows.c[column]).where(rows.c.id.in_([r.id for r in stored])))
        assert sorted(got) == sorted(values)

    for bad in _bogus(values):
        with refused(), ws.sessions.begin() as s:
            s.add(_row(table, image_id, reader_id, **{column: bad}))
        with refused(), ws.sessions.begin() as s:
            s.execute(update(rows).where(rows.c.id == stored[0].id).values({column: bad}))
    with ws.sessions() as s:  # the refused update changed nothing
        assert s.scalar(select(rows.c[column]).where(rows.c.id == stored[0].id)) == values[0]


# --- the migration, on databases as they were before it -------------------------------------
# These tests write through the schema reflected from the database at 0002, never through
# db.models: the models follow head, and a later migration may add columns 0002 lacks.

JAN_1 = datetime(2024, 1, 1, tzinfo=UTC)


def _tables(engine: Engine) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(bind=engine)
    return metadata.tables


def _fill_at_0002(engine: Engine, **extra_rows: list[dict]) -> None:
    """A few rows in every table as the schema stood at 0002, children referring to parents
    (cascading foreign keys included); `extra_rows` adds rows to the tables named."""
    image = dict(
        storage_path="images/a.png", width=8, height=8, modality="CR", source_format="png",
        bits_stored=8, photometric="MONOCHROME2", pixel_offset=0.0, pixel_scale=1.0,
        value_min=0.0, value_max=255.0, imported_at=JAN_1,
    )  # fmt: skip
    rows = {
        "readers": [
            dict(id=1, name="ada", role="admin", created_at=JAN_1),
            dict(id=2, name="bob", role="reviewer", created_at=JAN_1),
        ],
        "images": [
            dict(image, id=1, content_hash="a" * 64, display_name="IMG-1", status="labelled"),
            dict(
                image,
                id=2,
                content_hash="b" * 64,
                display_name="IMG-2",
                status="negative",
                patient_key="p1",
            ),
        ],  # fmt: skip
        "model_versions": [
            dict(
                id=1,
                label="pneumonia",
                arch="unet",
                encoder="resnet18",
                image_size=64,
                settings={},
                data_snapshot={},
                history=[],
                metrics={"iou": 0.5},
                checkpoint_path="models/1.pt",
                device="cpu",
                duration_s=1.5,
                is_active=True,
                created_at=JAN_1,
            )
        ],  # fmt: skip
        "annotation_revisions": [
            dict(
                id=1,
                image_id=1,
                reader_id=1,
                revision=1,
                created_at=JAN_1,
                tool="labelme",
                source="import",
                image_width=8,
                image_height=8,
                shapes=[{"label": "pneumonia", "points": [[1, 1], [4, 1], [4, 4]]}],
            ),
            dict(
                id=2,
                image_id=1,
                reader_id=1,
                revision=2,
                based_on_revision=1,
                created_at=JAN_1,
                tool="canvas",
                source="model",
                model_version_id=1,
                image_width=8,
                image_height=8,
                shapes=[],
            ),
        ],  # fmt: skip
        "image_findings": [
            dict(id=1, image_id=2, reader_id=2, finding="no_pneumonia", created_at=JAN_1),
            dict(id=2, image_id=1, reader_id=1, finding="pneumonia", created_at=JAN_1),
        ],
        "predictions": [
            dict(
                id=1,
                model_version_id=1,
                image_id=1,
                probability_path="p/1.png",
                score=0.9,
                uncertainty=0.1,
                boxes=[],
                created_at=JAN_1,
            )
        ],  # fmt: skip
        "reviews": [
            dict(id=1, image_id=1, reader_id=2, decision="signed_off", created_at=JAN_1),
        ],
        "jobs": [
            dict(
                id=1,
                kind="train",
                settings={},
                state="succeeded",
                progress=1.0,
                log_tail="",
                metrics={},
                result={},
                cancel_requested=False,
                created_at=JAN_1,
            )
        ],  # fmt: skip
    }
    for table, more in extra_rows.items():
        rows[table] = rows[table] + more
    tables = _tables(engine)
    with engine.begin() as conn:
        for table, values in rows.items():  # parents first
            conn.execute(insert(tables[table]), values)


def _snapshot(engine: Engine) -> dict:
    """Every row, index, unique constraint and foreign key of every table (but Alembic's)."""
    inspector = inspect(engine)
    out = {}
    with engine.connect() as conn:
        for name, table in _tables(engine).items():
            if name == "alembic_version":
                continue
            key = lambda d: d.get("name") or ""  # noqa: E731
            out[name] = {
                "rows": sorted(conn.execute(select(table)).all(), key=repr),
                "indexes": sorted(inspector.get_indexes(name), key=key),
                "unique": sorted(inspector.get_unique_constraints(name), key=key),
                "foreign_keys": sorted(inspector.get_foreign_keys(name), key=repr),
            }
    return out


def _every_connection_enforces_foreign_keys(engine: Engine) -> bool:
    """Check out every connection the pool holds (and one more) at once: the migration must
    not have handed one back with foreign keys switched off."""
    with ExitStack() as stack:
        conns = [stack.enter_context(engine.connect()) for _ in range(engine.pool.checkedin() + 1)]
        return all(c.execute(text("PRAGMA foreign_keys")).scalar() == 1 for c in conns)


def _version(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_without_migration_0003_the_same_names_would_be_stored(engine):
    """The refusals above come from 0003: one revision earlier the database takes anything
    (so the test above would fail if the constraints went missing)."""
    upgrade(engine, BEFORE)
    bogus = {"finding": "bogus", "source": "bogus", "status": "bogus", "decision": "bogus"}
    bogus |= {"state": "bogus", "role": "bogus"}
    _fill_at_0002(engine)
    tables = _tables(engine)
    with engine.begin() as conn:
        for table, column in ADDED_BY_0003:
            conn.execute(update(tables[table]).values({column: bogus[column]}))


def test_a_workspace_with_data_upgrades_keeping_rows_indexes_and_foreign_keys(engine):
    upgrade(engine, BEFORE)
    _fill_at_0002(engine)
    before = _snapshot(engine)
    upgrade(engine, CONSTRAINTS)
    after = _snapshot(engine)

    assert after == before
    assert before["image_findings"]["rows"] and before["annotation_revisions"]["rows"]
    for table, names in INDEXES.items():
        assert names <= {i["name"] for i in inspect(engine).get_indexes(table)}, table
    if engine.dialect.name == "sqlite":
        # The migration switched foreign keys off to recreate tables: they are back on.
        assert _every_connection_enforces_foreign_keys(engine)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO image_findings (image_id, reader_id, finding, created_at) "
                "VALUES (999, 999, 'pneumonia', '2024-01-01')"
            )
        )


def test_downgrade_drops_the_constraints_and_upgrade_adds_them_again(engine):
    upgrade(engine, BEFORE)
    _fill_at_0002(engine)
    before = _snapshot(engine)
    upgrade(engine, CONSTRAINTS)
    command.downgrade(alembic_config(engine), BEFORE)
    assert _snapshot(engine) == before
    for table, _ in ADDED_BY_0003:
        assert inspect(engine).get_check_constraints(table) == []
    upgrade(engine, CONSTRAINTS)
    for table, column in ADDED_BY_0003:
        names = {c["name"] for c in inspect(engine).get_check_constraints(table)}
        assert names == {constraint_name(table, column)}


def test_upgrade_names_the_rows_the_constraints_would_refuse(engine):
    upgrade(engine, BEFORE)
    done = dict(
        id=2, kind="train", settings={}, state="done", progress=1.0, log_tail="", metrics={},
        result={}, cancel_requested=False, created_at=JAN_1,
    )  # fmt: skip
    _fill_at_0002(engine, jobs=[done])
    before = _snapshot(engine)

    with pytest.raises(RuntimeError, match=r"jobs\.state = 'done' \(1 rows\)"):
        upgrade(engine, CONSTRAINTS)
    assert _version(engine) == BEFORE
    if engine.dialect.name == "sqlite":
        assert _every_connection_enforces_foreign_keys(engine)
    assert _snapshot(engine) == before


def test_an_upgrade_that_fails_halfway_on_sqlite_changes_nothing(tmp_path):
    """A table left over from a crashed recreate makes the fifth recreate (jobs) fail: the
    four before it are undone, no row is lost, and foreign keys are on again."""
    engine = make_engine(sqlite_url(tmp_path / "pneumolab.db"))
    upgrade(engine, BEFORE)
    _fill_at_0002(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE _alembic_tmp_jobs (id INTEGER)"))
    before = _snapshot(engine)

    with pytest.raises(OperationalError, match="_alembic_tmp_jobs already exists"):
        upgrade(engine, CONSTRAINTS)
    assert _every_connection_enforces_foreign_keys(engine)
    assert _snapshot(engine) == before
    assert _version(engine) == BEFORE
    with engine.connect() as conn:
        checks = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE sql GLOB '*CONSTRAINT ck_*'")
        )
        assert checks.all() == []

    with engine.begin() as conn:
        conn.execute(text("DROP TABLE _alembic_tmp_jobs"))
    before.pop("_alembic_tmp_jobs")
    upgrade(engine, CONSTRAINTS)  # once the leftover is gone the same upgrade goes through
    assert _snapshot(engine) == before
    engine.dispose()
