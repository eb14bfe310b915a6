"""Keep the local stack's parts running, as Cloud Run, Cloud SQL and Pub/Sub keep theirs.

A part that dies (a function killed, Postgres or an emulator crashed) is reported in one line
naming it and its exit status, and started again after a backoff that doubles from 1 s to 30 s
while it keeps dying and resets once it has stayed up for a minute. Only Ctrl-C stops the stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from common.localstack.processes import Child

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0


class Part(Protocol):
    """Something the supervisor can watch and start again."""

    name: str

    def exit_status(self) -> str | None:
        """None while it runs; otherwise a short description of how it ended."""
        ...

    def restart(self) -> None:
        """Start it again (blocking until ready); raises when it cannot come up."""
        ...

    def stop(self) -> None: ...


@dataclass
class ChildPart:
    """A child process started by `start`; `after_start` re-creates state it lost (topics)."""

    name: str
    child: Child
    start: Callable[[], Child]
    after_start: Callable[[], None] | None = None

    def exit_status(self) -> str | None:
        code = self.child.process.poll()
        if code is None:
            return None
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def restart(self) -> None:
        self.child.stop()  # whatever is left of its process group
        self.child = self.start()
        if self.after_start is not None:
            self.after_start()

    def stop(self) -> None:
        self.child.stop()


@dataclass
class _Watch:
    part: Part
    started: float
    delay: float = FIRST_DELAY_SECONDS
    restart_at: float | None = None


@dataclass
class Supervisor:
    report: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    _watches: list[_Watch] = field(default_factory=list)

    def watch(self, part: Part) -> None:
        self._watches.append(_Watch(part, started=self.clock()))

    @property
    def parts(self) -> list[Part]:
        return [watch.part for watch in self._watches]

    def check(self) -> None:
        """Notice deaths and restart what is due; call it every second or so."""
        for watch in self._watches:
            now = self.clock()
            if watch.restart_at is None:
                status = watch.part.exit_status()
                if status is None:
                    if now - watch.started >= HEALTHY_AFTER_SECONDS:
                        watch.delay = FIRST_DELAY_SECONDS
                    continue
                watch.restart_at = now + watch.delay
                self.report(
                    f"{watch.part.name} stopped ({status}); restarting in {watch.delay:.0f}s"
                )
                continue
            if now < watch.restart_at:
                continue
            try:
                watch.part.restart()
            except Exception as error:  # it may fail to come up: say why, back off, try again
                watch.delay = min(watch.delay * 2, MAX_DELAY_SECONDS)
                watch.restart_at = self.clock() + watch.delay
                reason = " ".join(str(error).split())[:200] or type(error).__name__
                self.report(
                    f"{watch.part.name} did not come back ({reason}); "
                    f"retrying in {watch.delay:.0f}s"
                )
                continue
            watch.started = self.clock()
            watch.restart_at = None
            watch.delay = min(watch.delay * 2, MAX_DELAY_SECONDS)
            self.report(f"{watch.part.name} restarted")

    def stop_all(self) -> None:
        for watch in reversed(self._watches):
            watch.part.stop()
        self._watches.clear()
