"""The database: migrations build exactly the models' schema; SQLite runs WAL with FKs on."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from db.engine import make_engine, sqlite_url
from db.migrate import upgrade
from db.models import Base


def test_migrations_produce_the_models_schema(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "m.db"))
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
    engine.dispose()


def test_sqlite_is_wal_with_foreign_keys(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "p.db"))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_foreign_keys_are_enforced(workspace):
    import pytest
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), workspace.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO image_findings (image_id, reader_id, finding, created_at) "
                "VALUES (999, 999, 'pneumonia', '2024-01-01')"
            )
        )


def test_worklist_filters_have_indexes_ending_in_the_sort_key(workspace):
    indexes = {
        i["name"]: i["column_names"] for i in inspect(workspace.engine).get_indexes("images")
    }
    assert indexes["ix_images_status_imported"] == ["status", "imported_at", "id"]
    assert indexes["ix_images_modality_imported"] == ["modality", "imported_at", "id"]
    assert indexes["ix_images_status_modality_imported"] == [
        "status",
        "modality",
        "imported_at",
        "id",
    ]


def test_filtered_worklist_page_reads_an_index_not_the_table(workspace):
    from db.queries import WorklistFilter, page_statement

    for flt in (
        WorklistFilter(status="labelled"),
        WorklistFilter(status="unlabelled", modality="CR"),
        WorklistFilter(),
    ):
        sql = page_statement(flt, 3, 24).compile(
            workspace.engine, compile_kwargs={"literal_binds": True}
        )
        with workspace.engine.connect() as conn:
            plan = " ".join(r[-1] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (flt, plan)
