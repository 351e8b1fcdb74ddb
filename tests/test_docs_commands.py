"""README.md and docs/*.md: every shell command names a real script and flags it accepts, every link resolves,
and README stays the front door."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import DOC_PAGES, ROOT, code_blocks


def _commands(page):
    """Each shell command of a page's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for body in code_blocks(page, "bash"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


COMMANDS = [(page, command) for page in DOC_PAGES for command in _commands(page)]


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
    for page in DOC_PAGES + [ROOT / "REPORT.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_readme_is_the_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    first_block = code_blocks(ROOT / "README.md", "bash")[0]
    assert ".venv/bin/python -m pytest -q" in first_block and "bash scripts/setup.sh" in first_block
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith(".venv/bin/python -m pytest -q")  # CI runs that
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    log = re.compile(r"(^|[^A-Za-z])I (ran|measured|stopped|left|kept|used|did)|[Oo]n 20\d\d-\d\d-\d\d|[Ii]ssue \d+|"
                     r"this session")
    assert not [p.name for p in pages if log.search(p.read_text())], "README and docs read as documentation, not a log"
