"""Progress lines with an ETA for long phases (sweeps, reports, validation), through `logging`."""

import logging
import time

logger = logging.getLogger(__name__)


class Progress:
    """Log "<phase>: done/total <unit>, elapsed, ETA" at most every `interval` seconds, and once at the end."""

    def __init__(self, phase, total=None, unit="batches", interval=10.0):
        self.phase, self.total, self.unit, self.interval = phase, total, unit, interval
        self.start = self._last = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def eta(self, done: int) -> float | None:
        """Seconds left at `done` of `total`, from the rate so far; None while unknown."""
        return self.elapsed / done * (self.total - done) if self.total and done else None

    def update(self, done: int, final: bool = False, note: str | None = None) -> None:
        """Log the line if `interval` seconds have passed (always if `final`); `note()` adds text to it."""
        now = time.perf_counter()
        if not final and now - self._last < self.interval:
            return
        self._last = now
        eta = self.eta(done)
        if final:
            line = f"{self.phase}: {done} {self.unit} in {self.elapsed:.1f} s"
        elif eta is not None:
            line = f"{self.phase}: {done}/{self.total} {self.unit}, {self.elapsed:.0f} s elapsed, ETA {eta:.0f} s"
        else:
            line = f"{self.phase}: {done} {self.unit}, {self.elapsed:.0f} s elapsed"
        logger.info("%s%s", line, note() if note else "")
