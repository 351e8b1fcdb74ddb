"""tfdisc.reporting.grid: the grid's runs and the queue that runs them, one process each."""

from pathlib import Path

import pytest

from tfdisc import files
from tfdisc.reporting import grid


def test_a_grid_names_its_runs_and_passes_the_options():
    runs = grid.grid("mnist", "fcn2", ["2", "8"], ["bnn"], ["on"], output_dir="runs/paper",
                     budget="table2: 10 epochs", extra=["--sweep_every=0"], epochs=10, data_dir=None)
    assert [r.name for r in runs] == ["mnist_fcn2_bnn_2b_adv", "mnist_fcn2_bnn_8b_adv"]
    assert runs[0].run_dir == Path("runs/paper/table2/mnist_fcn2_bnn_2b_adv")
    assert "--epochs=10" in runs[0].args and "--sweep_every=0" in runs[0].args
    assert not any(a.startswith("--data_dir") for a in runs[0].args)


def _recorder(tmp_path):
    """A stand-in for reproduce_paper.py: appends its arguments to calls.txt, fails when asked."""
    script = tmp_path / "record.py"
    script.write_text("import sys\nopen(sys.argv[0] + '.calls', 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                      "sys.exit(3 if '--fail' in sys.argv else 0)\n")
    return script


def test_the_queue_runs_entries_in_order_and_goes_on_after_a_failure(tmp_path):
    queue = tmp_path / "queue.txt"
    queue.write_text("# the study queue\n--dataset=mnist --bits=2\n\n--fail\n'--budget=table1: 20 epochs'\n")
    script = _recorder(tmp_path)
    failed = grid.run_queue(queue, script, ["--data_dir=d"], tmp_path / "paper")
    calls = Path(f"{script}.calls").read_text().splitlines()
    assert calls == ["--dataset=mnist --bits=2 --data_dir=d", "--fail --data_dir=d",
                     "--budget=table1: 20 epochs --data_dir=d"]
    assert failed == ["--fail"]


def test_entries_added_while_the_queue_runs_run_too(tmp_path):
    queue = tmp_path / "queue.txt"
    script = tmp_path / "append.py"  # the first entry adds a second one to the queue file
    script.write_text(f"import sys\nopen(sys.argv[0] + '.calls', 'a').write(sys.argv[1] + '\\n')\n"
                      f"if sys.argv[1] == '--first':\n    open({str(queue)!r}, 'a').write('--second\\n')\n")
    queue.write_text("--first\n")
    assert grid.run_queue(queue, script, [], tmp_path / "paper") == []
    assert Path(f"{script}.calls").read_text().split() == ["--first", "--second"]


def test_one_queue_per_runs_folder(tmp_path):
    queue = tmp_path / "queue.txt"
    queue.write_text("--x\n")
    (tmp_path / "paper").mkdir()
    with files.exclusive_lock(str(tmp_path / "paper" / ".queue.lock"), "The study queue"):
        with pytest.raises(files.LockedError, match="is in use by another process"):
            grid.run_queue(queue, _recorder(tmp_path), [], tmp_path / "paper")


def test_a_badly_quoted_line_is_named(tmp_path):
    queue = tmp_path / "queue.txt"
    queue.write_text("--ok\n'--budget=open\n")
    with pytest.raises(ValueError, match="queue.txt, line 2: No closing quotation; fix the line's quoting"):
        grid.queue_entries(queue)
