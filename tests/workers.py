"""Worker processes for the concurrency tests (tests/core/labels/test_concurrent_saves.py,
tests/core/test_workspace_concurrency.py, tests/db/test_concurrency_postgres.py): real
processes started together on one workspace. Not a test module: the tests get it from the
`workers` fixture (tests/conftest.py), and each worker process runs this file as a script
with its spec as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKERS, ROUNDS = 8, 10
IMAGES = 5  # real X-rays imported by every importing process
SHAPE = {"label": "lung", "shape_type": "polygon", "points": [[10, 10], [90, 12], [50, 80]]}


def barrier(gate: Path, name: str, worker: int, workers: int) -> None:
    """Wait until every worker has reached `name` (a file per worker in `gate`)."""
    (gate / f"{name}.{worker}").touch()
    deadline = time.monotonic() + 120
    while len(list(gate.glob(f"{name}.*"))) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {name}: the other workers never came")
        time.sleep(0.001)


def save_worker(spec: dict) -> None:
    """One reader's tab: each round, save at the same moment as the other workers, based on
    the revision this worker saved last."""
    from core.labels.revisions import save_revision
    from core.workspace import Workspace

    gate = Path(spec["gate"])
    ws = Workspace.open(spec["root"])
    results, based_on = [], None
    barrier(gate, "opened", spec["worker"], spec["workers"])
    for r in range(spec["rounds"]):
        barrier(gate, f"round{r}", spec["worker"], spec["workers"])
        try:
            res = save_revision(
                ws, spec["image_id"], "reader", [SHAPE], based_on=based_on,
                comment=f"{spec['worker']}:{r}",
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - the test counts every exception that escapes
            results.append({"error": traceback.format_exc()})
            continue
        conflict = res.conflict.revision if res.conflict else None
        results.append(
            {"revision": res.revision.revision, "based_on": based_on, "conflict": conflict}
        )
        based_on = res.revision.revision
    ws.dispose()
    print(json.dumps(results))


def open_worker(spec: dict) -> None:
    """Import what opening and importing need first, meet the others, then open (and import)."""
    from core.ingest.importer import import_paths
    from core.workspace import Workspace

    barrier(Path(spec["gate"]), "start", spec["worker"], spec["workers"])
    result: dict = {}
    try:
        ws = Workspace.open(spec["root"])
        if spec.get("paths"):
            result = import_paths(ws, spec["paths"]).summary()
        ws.dispose()
    except Exception:  # noqa: BLE001 - the test counts every exception that escapes
        result = {"error": traceback.format_exc()}
    print(json.dumps(result))


def login_worker(spec: dict) -> None:
    """One browser's login attempt, at the same moment as the other workers'
    (tests/core/accounts/test_concurrent_logins.py)."""
    from core.accounts import LoginRefused, authenticate
    from core.workspace import Workspace

    ws = Workspace.open(spec["root"])
    barrier(Path(spec["gate"]), "opened", spec["worker"], spec["workers"])
    try:
        result = {"login": authenticate(ws, spec["name"], spec["password"]).name}
    except LoginRefused as e:
        result = {"refused": e.reason}
    except Exception:  # noqa: BLE001 - the test counts every exception that escapes
        result = {"error": traceback.format_exc()}
    ws.dispose()
    print(json.dumps(result))


def run_workers(specs: list[dict], env: dict, timeout: float) -> list:
    """Start one process per spec running this file (-P: tests/core must not shadow the
    product's core package) and return each one's JSON result; a
    process that fails, or a run longer than `timeout`, fails the test."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-P", __file__, json.dumps(spec)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for spec in specs
    ]
    deadline, outputs = time.monotonic() + timeout, []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, f"worker exited {p.returncode}:\n{err[-4000:]}"
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    except subprocess.TimeoutExpired:
        pytest.fail(f"workers still running after {timeout} s (a hang or a lock never freed)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outputs


def save_specs(root: Path, gate: Path, image_id: int) -> list[dict]:
    gate.mkdir()
    return [
        {"task": "save", "root": str(root), "gate": str(gate), "image_id": image_id, "worker": w,
         "workers": WORKERS, "rounds": ROUNDS}
        for w in range(WORKERS)
    ]  # fmt: skip


def open_specs(root: Path, gate: Path, paths: list[str] | None = None) -> list[dict]:
    gate.mkdir()
    return [
        {
            "task": "open",
            "root": str(root),
            "gate": str(gate),
            "worker": w,
            "workers": WORKERS,
            "paths": paths,
        }
        for w in range(WORKERS)
    ]


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PNEUMOLAB_")}
    return {**env, **extra}


def check_saves(ws, image_id: int, outputs: list[list[dict]]) -> None:
    """0 exceptions, 0 lost updates, numbers 1..N, the conflict reported exactly when due."""
    from core.labels.revisions import revision_history

    errors = [r["error"] for out in outputs for r in out if "error" in r]
    assert not errors, f"{len(errors)} saves raised; the first:\n{errors[0]}"
    saved = [r for out in outputs for r in out]
    numbers = sorted(r["revision"] for r in saved)
    assert numbers == list(range(1, len(saved) + 1)), numbers
    for r in saved:
        # The documented rule: a save not based on the reader's newest revision is kept and
        # told of that newest one, which is the revision just before its own.
        newest_before = r["revision"] - 1 or None
        expected = newest_before if r["based_on"] != newest_before else None
        assert r["conflict"] == expected, r
    history = revision_history(ws, image_id, "reader")
    assert sorted(h.revision for h in history) == numbers  # what the workers saw is stored


def check_one_seeding(ws) -> None:
    """The schema is at head, and what the first open seeds is there exactly once."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import func, select, text

    from core.vocab import DEFAULT_LABELS
    from core.workspace import DEFAULT_READER
    from db.migrate import alembic_config
    from db.models import LabelClass, Reader, Setting

    head = ScriptDirectory.from_config(alembic_config(ws.engine)).get_current_head()
    with ws.sessions() as s:
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
        assert sorted(s.scalars(select(LabelClass.name))) == sorted(DEFAULT_LABELS)
        assert list(s.scalars(select(Reader.name))) == [DEFAULT_READER]
        # The migrations' default settings and the secret's check value, each once (the
        # check is written by whichever host opened first; the job queue id when first used).
        seeded = {"deid_secret_check", "lockout_minutes", "max_failed_logins"}
        seeded |= {"session_idle_minutes"}
        keys = list(s.scalars(select(Setting.key)))
        assert len(keys) == len(set(keys)) == s.scalar(select(func.count()).select_from(Setting))
        assert seeded - {"deid_secret_check"} <= set(keys) <= seeded | {"job_queue_id"}, keys


def image_ids(ws) -> list[int]:
    from core.labels.catalog import list_images

    return [im["id"] for im in list_images(ws)]


if __name__ == "__main__":
    SPEC = json.loads(sys.argv[1])
    {"save": save_worker, "open": open_worker, "login": login_worker}[SPEC["task"]](SPEC)
