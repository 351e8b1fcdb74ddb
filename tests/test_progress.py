"""tfdisc.progress: progress lines with an ETA, at most one per interval and always one at the end."""

import logging

from tfdisc.progress import Progress


def test_lines_carry_an_eta_and_the_final_one_the_total(caplog):
    with caplog.at_level(logging.INFO, logger="tfdisc.progress"):
        progress = Progress("Sweep", total=4, interval=0)
        progress.update(1)
        progress.update(4, final=True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Sweep: 1/4 batches") and "ETA" in lines[0]
    assert lines[-1].startswith("Sweep: 4 batches in")


def test_lines_wait_for_the_interval(caplog):
    with caplog.at_level(logging.INFO, logger="tfdisc.progress"):
        progress = Progress("Report", total=10, interval=3600)
        for done in range(1, 10):
            progress.update(done)
    assert not caplog.records
