"""Queueing a job: a row in our database (the truth) and a wake-up for idle workers.

Why huey stays, and only as the wake-up channel: huey has no lease (a message a worker took
is gone, whether or not that worker lives to finish it), no notion of which worker may take
which kind of work, and its consumer's own SIGTERM handling ended a worker mid-epoch with
SIGABRT. So the database decides who runs what: a worker claims a queued job with one
conditional UPDATE (core/jobs/lease.py), which exactly one worker wins on SQLite and on
PostgreSQL, and it holds the job under a heartbeat. huey's storage (the SQLite file
`queue.db` in the workspace by default, Redis when PNEUMOLAB_REDIS_URL is set) only carries
"job N of kind K was queued" to whichever idle worker waits on kind K, so that it starts at
once instead of at its next look at the database (every WAKE_POLL_S seconds). A lost,
duplicated or stale wake-up costs at most one poll; it can never run a job twice.

One wake-up queue per job kind, named after the workspace's queue id: a random id stored in
the database's settings on first use, so every process (every host) of one database uses the
same Redis keys, whatever its workspace folder or the spelling of its database URL.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import tasks
from core.workspace import Workspace
from db.models import Job, Setting

log = logging.getLogger(__name__)

REDIS_URL_ENV = "PNEUMOLAB_REDIS_URL"
QUEUE_ID_SETTING = "job_queue_id"
WAKE_POLL_S = 2.0  # an idle worker looks at the database at least this often


_queue_ids: dict[str, str] = {}  # database URL -> its queue id (it never changes)


def queue_id(ws: Workspace) -> str:
    """The workspace database's queue id (created once, the same for every process)."""
    if ws.database_url in _queue_ids:
        return _queue_ids[ws.database_url]
    for attempt in range(2):
        with ws.sessions() as s:
            found = s.get(Setting, QUEUE_ID_SETTING)
            if found is not None:
                _queue_ids[ws.database_url] = found.value
                return found.value
        try:
            with ws.sessions.begin() as s:
                s.add(Setting(key=QUEUE_ID_SETTING, value=uuid.uuid4().hex))
        except IntegrityError:  # another process stored its id first: use that one
            if attempt:
                raise
    raise RuntimeError("the job queue id could not be stored")  # not reached: read above


def queue_name(ws: Workspace) -> str:
    """The stable base name of this workspace's wake-up queues (and Redis keys)."""
    return f"pneumolab-{queue_id(ws)}"


class WakeChannel:
    """Wake-ups per job kind over huey's storage (Redis, or SQLite in the workspace)."""

    def __init__(self, name: str, root: Path, redis_url: str | None) -> None:
        self.name, self.root, self.redis_url = name, root, redis_url
        self._storages: dict[str, Any] = {}

    def storage(self, kind: str):
        if kind not in self._storages:
            if self.redis_url:
                from huey import RedisHuey

                huey = RedisHuey(f"{self.name}-{kind}", url=self.redis_url, results=False)
            else:
                from huey import SqliteHuey

                huey = SqliteHuey(
                    f"{self.name}-{kind}", filename=str(self.root / "queue.db"), results=False
                )
            self._storages[kind] = huey.storage
        return self._storages[kind]

    def ping(self, kind: str, job_id: int) -> None:
        self.storage(kind).enqueue(str(job_id).encode())

    def pending(self, kind: str) -> int:
        return self.storage(kind).queue_size()

    def wait(self, kinds: Sequence[str], timeout: float, stop: Callable[[], bool]) -> bool:
        """Block up to `timeout` s for a wake-up of one of `kinds` (or until stop()). True
        when one came. Redis: one BRPOP over the kinds' keys; SQLite: a short poll."""
        if self.redis_url:
            stores = [self.storage(k) for k in kinds]
            keys = [st.queue_key for st in stores]
            return stores[0].conn.brpop(keys, timeout=timeout) is not None
        deadline = time.monotonic() + timeout
        while not stop():
            if any(self.storage(k).dequeue() is not None for k in kinds):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return False


@cache
def _channel(name: str, root: str, redis_url: str | None) -> WakeChannel:
    return WakeChannel(name, Path(root), redis_url)


def wake_channel(ws: Workspace) -> WakeChannel:
    """This process's wake-up channel of `ws` (Redis when PNEUMOLAB_REDIS_URL is set)."""
    return _channel(queue_name(ws), str(ws.root), os.environ.get(REDIS_URL_ENV) or None)


def wake_workers(ws: Workspace, kind: str, job_id: int) -> None:
    """Tell an idle worker of `kind` that job `job_id` waits. Best effort: the job is already
    recorded, and every worker finds it at its next look at the database without this."""
    try:
        wake_channel(ws).ping(kind, job_id)
    except Exception as e:  # noqa: BLE001 - a down Redis must not lose or refuse the job
        log.warning("job %s is queued, but waking the workers failed (%s); they will find "
                    "it within %.0f s", job_id, e, WAKE_POLL_S)  # fmt: skip


def submit_job(ws: Workspace, kind: str, settings: dict[str, Any], created_by: str | None) -> int:
    """Record a job and wake a worker for it. Returns the job id."""
    if kind not in tasks.TASKS:
        raise ValueError(
            f"unknown job kind {kind!r}; valid kinds: {', '.join(sorted(tasks.TASKS))}"
        )
    with ws.sessions.begin() as s:
        job = Job(kind=kind, settings=settings, created_by=created_by, state="queued")
        s.add(job)
        s.flush()
        job_id = job.id
    wake_workers(ws, kind, job_id)
    return job_id


def queued_job_ids(ws: Workspace, kinds: Sequence[str], limit: int = 8) -> list[int]:
    """The oldest queued jobs of `kinds`, first in line first."""
    with ws.sessions() as s:
        return list(
            s.scalars(
                select(Job.id)
                .where(Job.state == "queued", Job.kind.in_(list(kinds)))
                .order_by(Job.id)
                .limit(limit)
            )
        )
