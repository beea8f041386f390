"""The progress reporter a running job's handler writes to: throttled writes to the job row,
and the answer to "should this job stop?": the user cancelled it, the worker was asked to stop
(SIGTERM, its app went away), or the worker lost its lease (another worker declared it dead)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from core.jobs.records import LOG_TAIL_LINES
from core.workspace import Workspace
from db.models import Job


class JobReporter:
    """Progress callback that writes to the job row (throttled) and answers cancellation."""

    def __init__(
        self,
        ws: Workspace,
        job_id: int,
        min_interval: float = 1.0,
        worker_id: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.ws, self.job_id, self.min_interval = ws, job_id, min_interval
        # The worker whose lease the job runs under, and its "stop now" event (SIGTERM).
        self.worker_id, self.stop = worker_id, stop
        self.lease_lost = False
        self._lines: list[str] = []
        self._history: list[dict] = []
        self._progress = 0.0
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = False
        self._epochs = 1

    # ProgressCallback
    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self._epochs = max(epochs, 1)
        self.on_log(f"epoch {epoch}/{epochs} started")

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        self._progress = ((epoch - 1) + step / max(steps, 1)) / self._epochs
        self._flush(force=False, loss=loss)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._history.append({"epoch": epoch, **{k: float(v) for k, v in metrics.items()}})
        self._progress = epoch / self._epochs
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.on_log(f"epoch {epoch}/{self._epochs} done: {shown}", force=True)

    def on_log(self, message: str, force: bool = True) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._lines = (self._lines + [f"{stamp} {message}"])[-LOG_TAIL_LINES:]
        self._flush(force=force)

    def set_progress(self, fraction: float, message: str | None = None) -> None:
        self._progress = min(max(fraction, 0.0), 1.0)
        if message:
            self.on_log(message, force=False)
        self._flush(force=False)

    def should_stop(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            return True
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= self.min_interval:
            self._last_cancel_check = now
            with self.ws.sessions() as s:
                row = s.execute(
                    select(Job.cancel_requested, Job.state, Job.worker_id).where(
                        Job.id == self.job_id
                    )
                ).one()
            self.lease_lost = self.worker_id is not None and (
                row.state != "running" or row.worker_id != self.worker_id
            )
            self._cancelled = bool(row.cancel_requested) or self.lease_lost
        return self._cancelled

    def _flush(self, force: bool, loss: float | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        with self.ws.sessions.begin() as s:
            job = s.get(Job, self.job_id)
            if self.worker_id is not None and job.worker_id != self.worker_id:
                return  # no longer this worker's job (declared dead): leave its record alone
            job.progress = round(self._progress, 4)
            job.log_tail = "\n".join(self._lines)
            metrics = dict(job.metrics)
            metrics["history"] = self._history
            if loss is not None:
                metrics["last_loss"] = float(loss)
            job.metrics = metrics
