"""How a training run reports progress and learns that it should stop.

The CLI prints it (TextProgress); the job worker writes it to the database and answers
should_stop() from the job's "cancel requested" flag.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO


class ProgressCallback(Protocol):
    """Receives training events. Epochs and steps count from 1."""

    def on_epoch_start(self, epoch: int, epochs: int) -> None: ...

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_log(self, message: str) -> None: ...

    def should_stop(self) -> bool: ...


class NullProgress:
    """Ignores every event and never asks to stop."""

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        pass

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        pass

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        pass

    def on_log(self, message: str) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class TextProgress(NullProgress):
    """Plain-text progress for the CLI: a self-overwriting step line on a terminal, one line per
    epoch otherwise (so logs piped to a file stay readable)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._epochs = 0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self._epochs = epochs

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if not self._tty:
            return
        filled = int(20 * step / max(steps, 1))
        bar = "#" * filled + "." * (20 - filled)
        self.stream.write(f"\repoch {epoch}/{self._epochs} [{bar}] {step}/{steps} loss {loss:.4f}")
        self.stream.flush()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        parts = " ".join(
            f"{k} {v:.4g}"
            for k, v in metrics.items()
            if k != "epoch" and isinstance(v, float | int)
        )
        prefix = "\r\x1b[K" if self._tty else ""  # clear the step line first
        self.stream.write(f"{prefix}epoch {epoch}/{self._epochs} {parts}\n")
        self.stream.flush()

    def on_log(self, message: str) -> None:
        self.stream.write(("\n" if self._tty else "") + message + "\n")
        self.stream.flush()
