"""README.md and docs/*.md: every Python block runs as written, and the API reference builds (the commands and
links: tests/test_docs_commands.py)."""

import os
import subprocess
import sys

import pytest

from helpers import DOC_PAGES, ROOT, code_blocks, require_data


@pytest.mark.slow
@pytest.mark.exclusive  # a TensorFlow process that trains
@pytest.mark.parametrize("page", [p for p in DOC_PAGES if code_blocks(p, "python")], ids=lambda p: p.name)
def test_python_blocks_run_as_written(page, tmp_path):
    require_data()
    program = "\n\n".join(code_blocks(page, "python"))
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TFDISC_DATA_DIR": str(require_data().parent)}, timeout=1500)
    assert result.returncode == 0, f"{page.name}:\n{result.stderr[-3000:]}"


@pytest.mark.slow
def test_the_api_reference_builds(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pdoc", "tfdisc", "-o", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    built = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    for module in ("tfdisc/models.html", "tfdisc/evaluation/report.html", "tfdisc/reporting/records.html",
                   "tfdisc/scan.html"):
        assert module in built
    assert "Warn" not in result.stderr, result.stderr[-3000:]
