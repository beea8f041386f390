"""Processes of the job tests (tests/core/jobs, tests/db/department): each one a separate
Python process on one workspace, started as `python processes.py '<spec as JSON>'`, printing
one JSON line. Not a test module.

- "app": an app host, calling the services the Train and Review pages call (submit_training,
  submit_prediction, accept_prediction) and printing what it queued or saved.
- "claim": a worker's claim loop without running anything: claims queued jobs until none is
  left (after a start barrier, so that every claimer races) and prints the ids it won.
- "queue": prints this process's queue name and the wake-ups pending per kind.
- "parent": an app server stand-in: starts the app's worker (ensure_worker) and sleeps.

The tests load this file by path (the `job_processes` fixtures) for its helpers below: env,
run, spawn, start_worker, worker_status, wait_until.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


# --- helpers for the tests -------------------------------------------------------------------


def env(**extra: str) -> dict:
    """This process's environment for a child: the repository on the path, one torch thread,
    and `extra` (PNEUMOLAB_* settings of the test)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PNEUMOLAB_")}
    return {**base, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            **extra}  # fmt: skip


def spawn(spec: dict, environ: dict) -> subprocess.Popen:
    """Start this file as a process with `spec` (-P: tests/core must not shadow core)."""
    return subprocess.Popen(
        [sys.executable, "-P", __file__, json.dumps(spec)], cwd=REPO, env=environ,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def result(proc: subprocess.Popen, timeout: float = 120) -> dict:
    """The JSON line a process of this file printed (it must exit 0)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"process exited {proc.returncode}:\n{err[-4000:]}"
    return json.loads(out.strip().splitlines()[-1])


def run(spec: dict, environ: dict, timeout: float = 120) -> dict:
    return result(spawn(spec, environ), timeout)


def start_worker(
    root: Path, environ: dict, kinds: str | None = None, log: Path | None = None
) -> subprocess.Popen:
    """A real `pneumolab worker` on the workspace at root (its JSON line on stdout; its log
    on stderr, or in the file `log`)."""
    command = [sys.executable, "-m", "core.cli", "--workspace", str(root), "worker"]
    with open(log, "ab") if log else open(os.devnull, "wb") as sink:
        return subprocess.Popen(
            command + (["--kinds", kinds] if kinds else []), cwd=REPO, env=environ,
            stdout=subprocess.PIPE, stderr=sink if log else subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip


def race_claims(root: Path, environ: dict, gate: Path, processes: int = 4) -> list[int]:
    """`processes` claim processes, released together by `gate`, each claiming queued
    predict jobs until none is left: every job id any of them won, sorted."""
    gate.mkdir()
    spec = {"role": "claim", "root": str(root), "kinds": ["predict"], "gate": str(gate)}
    procs = [spawn({**spec, "n": n, "of": processes}, environ) for n in range(processes)]
    return sorted(j for p in procs for j in result(p)["won"])


def cli(root: Path, environ: dict, *args: str) -> tuple[int, dict]:
    """(exit status, the one JSON line) of `pneumolab --workspace root *args`."""
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "--workspace", str(root), *args],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line: {done.stdout!r}\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(lines[0])


def worker_status(root: Path, environ: dict) -> dict:
    """What `pneumolab worker --status` prints."""
    code, out = cli(root, environ, "worker", "--status")
    assert code == 0, out
    return out


def wait_until(condition, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- the processes -------------------------------------------------------------------------


def app(spec: dict, ws) -> dict:
    from core.tasks.submit import TrainRequest, submit_prediction, submit_training

    out: dict = {"jobs": []}
    for action in spec["actions"]:
        if action["do"] == "train":
            out["jobs"].append(submit_training(ws, TrainRequest(**action["request"])))
        elif action["do"] == "predict":
            out["jobs"].append(submit_prediction(ws, action["version"], "app", device="cpu"))
        elif action["do"] == "job":
            from core.jobs import submit_job

            out["jobs"].append(submit_job(ws, action["kind"], action["settings"], "app"))
        elif action["do"] == "accept":
            from core.review.actions import accept_prediction

            rev = accept_prediction(ws, action["image"], action["version"], "reader")
            out["accepted"] = {"image": action["image"], "revision": rev.revision}
    return out


def claim(spec: dict, ws) -> dict:
    from core.jobs import lease

    worker_id = lease.register_worker(ws, spec["kinds"])
    gate = Path(spec["gate"])
    (gate / f"ready.{spec['n']}").touch()
    while len(list(gate.glob("ready.*"))) < spec["of"]:
        time.sleep(0.005)
    won = []
    while (job_id := lease.claim_next(ws, worker_id, spec["kinds"])) is not None:
        won.append(job_id)
    lease.retire_worker(ws, worker_id, "done claiming")
    return {"won": won, "worker": worker_id}


def queue(spec: dict, ws) -> dict:
    from core.jobs.queue import queue_name, wake_channel

    channel = wake_channel(ws)
    return {"name": queue_name(ws), "pending": {k: channel.pending(k) for k in spec["kinds"]}}


def parent(spec: dict, ws) -> dict:
    from core.jobs.worker import ensure_worker

    print(json.dumps({"started": ensure_worker(ws)}), flush=True)
    time.sleep(3600)
    return {}


def main() -> None:
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, str(REPO))
    from core.workspace import Workspace

    ws = Workspace.open(spec["root"])
    try:
        result = {"app": app, "claim": claim, "queue": queue, "parent": parent}[spec["role"]](
            spec, ws
        )
    finally:
        ws.dispose()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
