"""A robustness report's checkpoint: the counts of its finished (batch, ε) units in one JSON file, so that a stopped
report resumes where it stopped and ends with the very counts an uninterrupted one gives.

A unit's counts depend only on the model, the attack settings, its batch and its ε (every random draw is seeded by
the settings and the batch's shape), so the file is keyed by a digest of the first two and each unit stores a
digest of its batch: a unit is reused only for the same model, settings and images. The file is rewritten
atomically after every unit and validated when read.
"""

import hashlib
import json
import logging
import math
import os

import numpy as np
import tensorflow as tf

from tfdisc import files
from tfdisc.types import Path

logger = logging.getLogger(__name__)

FORMAT = "tfdisc.report-checkpoint/1"


def _update(digest, arrays):
    for array in arrays:
        array = np.asarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def model_digest(model: tf.keras.Model, settings: dict) -> str:
    """A digest of `model`'s weights (values, shapes and order; not their names, which depend on what the process
    built before) and of `settings` (JSON-serializable): what a unit's counts depend on besides its batch and ε."""
    return _update(hashlib.sha256(json.dumps(settings, sort_keys=True).encode()), model.get_weights())


def batch_digest(x: tf.Tensor, y: tf.Tensor) -> str:
    """A digest of one batch's images and labels, their shapes and dtypes included."""
    return _update(hashlib.sha256(), (x, y))


class ReportCheckpoint:
    """The finished units of one report in the file `path`, for the model and settings digest `key`.

    A file of another key (other weights or attack settings) is a finished unit of no use: it is replaced as units
    finish, with a warning. A file that is not a tfdisc report checkpoint, or is truncated, raises ValueError
    naming it: tfdisc never overwrites what it did not write.
    """

    def __init__(self, path: Path, key: str, columns: int):
        files.check_writable_file(path, "the report checkpoint")
        self.path, self.key, self.columns = str(path), key, columns
        self.units: dict[str, dict] = {}
        self.seconds = 0.0  # report time spent on the stored units, in earlier calls
        self.added = 0  # units stored by this object
        if os.path.exists(self.path):
            self._read()

    def _fail(self, problem: str) -> ValueError:
        return ValueError(f"{self.path} {problem}; delete it to restart the report from its first batch (only "
                          "the time of the finished batches is lost).")

    def _read(self):
        try:
            with open(self.path) as f:
                saved = json.load(f)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise self._fail(f"is not a readable report checkpoint ({error})") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a tfdisc report checkpoint (no format {FORMAT!r}); tfdisc does not "
                             "overwrite it. Move it away or give another checkpoint path.")
        if saved.get("key") != self.key:
            logger.warning("%s holds another report (other weights or attack settings); starting this report over.",
                           self.path)
            return
        units, seconds = saved.get("units"), saved.get("seconds")
        if not isinstance(units, dict) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise self._fail("lacks its 'units' or 'seconds'")
        for name, unit in units.items():
            self._check_unit(name, unit)
        self.units, self.seconds = units, float(seconds)
        if units:
            logger.info("%s: resuming the report with %d finished (batch, ε) unit(s)", self.path, len(units))

    def _check_unit(self, name, unit):
        def counts(value, length):
            return (isinstance(value, list) and len(value) == length
                    and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value))

        ok = (isinstance(unit, dict) and isinstance(unit.get("data"), str) and counts(unit.get("totals"), 5)
              and counts(unit.get("counts"), self.columns) and isinstance(unit.get("survived"), str))
        if ok:
            examples = unit["totals"][4]
            try:
                ok = (len(bytes.fromhex(unit["survived"])) == -(-examples // 8)
                      and max(unit["totals"] + unit["counts"]) <= examples)
            except ValueError:
                ok = False
        if not ok:
            raise self._fail(f"has a malformed unit {name!r}")

    @staticmethod
    def _name(batch: int, eps: float) -> str:
        return f"{batch}@{eps!r}"

    def get(self, batch: int, eps: float, data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(totals, counts, survived) of the unit of batch number `batch` at `eps` if it finished on the batch of
        digest `data`, else None."""
        unit = self.units.get(self._name(batch, eps))
        if unit is None or unit["data"] != data:
            return None
        examples = unit["totals"][4]
        survived = np.unpackbits(np.frombuffer(bytes.fromhex(unit["survived"]), np.uint8), count=examples)
        return np.array(unit["totals"], np.int64), np.array(unit["counts"], np.int64), survived.astype(bool)

    def put(self, batch: int, eps: float, data: str, totals: np.ndarray, counts: np.ndarray, survived: np.ndarray,
            seconds: float) -> None:
        """Store a finished unit and the report's time so far (`seconds`, earlier calls included), atomically."""
        self.units[self._name(batch, eps)] = {"data": data, "totals": [int(t) for t in totals],
                                              "counts": [int(c) for c in counts],
                                              "survived": np.packbits(np.asarray(survived, bool)).tobytes().hex()}
        files.write_json_atomic(self.path, {"format": FORMAT, "key": self.key, "seconds": seconds,
                                            "units": self.units})
        self.added += 1
