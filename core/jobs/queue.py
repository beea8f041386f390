"""The queue: huey with SQLite storage in the workspace by default, Redis when
PNEUMOLAB_REDIS_URL is set, so queued work survives an app restart."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from core import tasks
from core.jobs.runner import run_job
from core.workspace import Workspace
from db.models import Job


@cache
def queue_for(root: str):
    """(huey, run_job task) of the workspace at `root` (one per process and workspace)."""
    redis_url = os.environ.get("PNEUMOLAB_REDIS_URL")
    if redis_url:
        from huey import RedisHuey

        huey = RedisHuey(f"pneumolab-{abs(hash(root))}", url=redis_url, results=False)
    else:
        from huey import SqliteHuey

        huey = SqliteHuey("pneumolab", filename=str(Path(root) / "queue.db"), results=False)
    return huey, huey.task(name="run_job")(_run_job_task)


def _run_job_task(root: str, job_id: int) -> None:
    ws = Workspace.open(root)
    try:
        run_job(ws, job_id)
    finally:
        ws.dispose()


def submit_job(ws: Workspace, kind: str, settings: dict[str, Any], created_by: str | None) -> int:
    """Record a job and queue it. Returns the job id."""
    if kind not in tasks.TASKS:
        raise ValueError(
            f"unknown job kind {kind!r}; valid kinds: {', '.join(sorted(tasks.TASKS))}"
        )
    with ws.sessions.begin() as s:
        job = Job(kind=kind, settings=settings, created_by=created_by, state="queued")
        s.add(job)
        s.flush()
        job_id = job.id
    _huey, task = queue_for(str(ws.root))
    task(str(ws.root), job_id)  # calling a huey task enqueues it
    return job_id
