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
    def elapsed(self):
        return time.perf_counter() - self.start

    def update(self, done, final=False):
        now = time.perf_counter()
        if not final and now - self._last < self.interval:
            return
        self._last = now
        if final:
            logger.info("%s: %d %s in %.1f s", self.phase, done, self.unit, self.elapsed)
        elif self.total and done:
            eta = self.elapsed / done * (self.total - done)
            logger.info("%s: %d/%d %s, %.0f s elapsed, ETA %.0f s", self.phase, done, self.total, self.unit,
                        self.elapsed, eta)
        else:
            logger.info("%s: %d %s, %.0f s elapsed", self.phase, done, self.unit, self.elapsed)
