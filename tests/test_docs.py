"""README.md and docs/*.md: every Python block runs as written, every shell command parses, every link resolves,
and the API reference builds."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import require_data

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PAGES = [page for page in PAGES if page.name != "report_notes.md"]  # part of REPORT.md, which is generated
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _blocks(page, language):
    return [body for lang, body in BLOCK.findall(page.read_text()) if lang == language]


def _commands(page):
    """Each shell command of a page's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for body in _blocks(page, "bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


@pytest.mark.slow
@pytest.mark.exclusive  # a TensorFlow process that trains
@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")], ids=lambda p: p.name)
def test_python_blocks_run_as_written(page, tmp_path):
    require_data()
    program = "\n\n".join(_blocks(page, "python"))
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TFDISC_DATA_DIR": str(require_data().parent)}, timeout=1500)
    assert result.returncode == 0, f"{page.name}:\n{result.stderr[-3000:]}"


COMMANDS = [(page, command) for page in PAGES for command in _commands(page)]


@pytest.mark.parametrize("page, command", COMMANDS, ids=[f"{p.name}:{c[:60]}" for p, c in COMMANDS])
def test_shell_commands_name_real_scripts_and_flags(page, command):
    words = shlex.split(command)
    if words[0] == "bash":
        assert subprocess.run(["bash", "-n", str(ROOT / words[1])]).returncode == 0, command
        return
    assert words[0] == ".venv/bin/python", f"{page.name}: run commands with the set-up venv: {command}"
    if words[1] == "-m":
        assert words[2] in ("pytest", "pdoc"), command
        return
    script = ROOT / words[1]
    assert script.is_file(), f"{page.name}: no script {words[1]}"
    result = subprocess.run([sys.executable, str(script), *words[2:]], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TFDISC_FLAGS_ONLY": "1"}, timeout=300)
    expected = "--help" if "--help" in words else "flags ok"  # --help prints the flags and exits 0
    assert result.returncode == 0 and expected in result.stdout, f"{page.name}: {command}\n{result.stderr[-2000:]}"


def test_links_between_pages_resolve():
    for page in PAGES + [ROOT / "REPORT.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_readme_is_the_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    first_block = _blocks(ROOT / "README.md", "bash")[0]
    assert ".venv/bin/python -m pytest -q" in first_block and "bash scripts/setup.sh" in first_block
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith(".venv/bin/python -m pytest -q")  # CI runs that
    assert not re.search(r"(^|[^A-Za-z])I (ran|measured|stopped|left|kept|used|did)|[Oo]n 20\d\d-\d\d-\d\d",
                         "\n".join(p.read_text() for p in PAGES)), "README and docs read as documentation, not a log"


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
