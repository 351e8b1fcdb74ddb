"""Run pytest and print its wall time and peak resident memory, summed over every process it starts.

    .venv/bin/python scripts/suite_memory.py [pytest arguments]

It samples /proc once a second (Linux only), so a peak shorter than a second can be missed. The
processes holding the most memory at the peak are listed, to show what to trim.
"""

import os
import subprocess
import sys
import time


def _processes():
    """{pid: (parent pid, resident MiB, command line)} of every readable process."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{name}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # it ended meanwhile
            continue
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) // 1024
        found[int(name)] = (int(fields["PPid"]), rss, command)
    return found


def tree_memory(root):
    """[(resident MiB, pid, command line)] of `root` and all its descendants, largest first."""
    processes = _processes()
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        if pid in processes:
            tree.append((processes[pid][1], pid, processes[pid][2]))
            frontier += [child for child, (parent, _, _) in processes.items() if parent == pid]
    return sorted(tree, reverse=True)


def main(pytest_args):
    start = time.monotonic()
    suite = subprocess.Popen([sys.executable, "-m", "pytest", *pytest_args])
    peak, at_peak = 0, []
    while suite.poll() is None:
        tree = tree_memory(suite.pid)
        if sum(rss for rss, _, _ in tree) > peak:
            peak, at_peak = sum(rss for rss, _, _ in tree), tree
        time.sleep(1)
    minutes, seconds = divmod(time.monotonic() - start, 60)
    print(f"pytest exited with {suite.returncode} after {int(minutes)} min {seconds:.0f} s; peak resident memory "
          f"{peak / 1024:.2f} GiB summed over its processes. At the peak:")
    for rss, pid, command in at_peak[:6]:
        print(f"  {rss / 1024:5.2f} GiB  pid {pid}  {command[-100:]}")
    return suite.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
