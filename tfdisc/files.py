"""Atomic file and folder writes: a reader never sees a half-written result."""

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from typing import IO, Iterable, Iterator

from tfdisc.types import Path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path` in one rename.

    The file gets the permissions a plain `open` would give it (0666 less the umask).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[str]:
    """Yield a temporary folder beside `path`; on success it takes the place of `path` (old contents removed).

    A kill while the folder is written leaves `path` as it was (plus a `.tmp-` folder that the next
    successful write of the same `path` removes).
    """
    parent = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    for stale in os.listdir(parent):
        if stale.startswith(f".tmp-{name}-") or stale.startswith(f".old-{name}-"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{name}-")
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(path):
        old = tempfile.mkdtemp(dir=parent, prefix=f".old-{name}-")
        os.replace(path, os.path.join(old, name))
    os.replace(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def replace_entries(source: Path, target: Path, entries: Iterable[str], last: str) -> None:
    """Move `entries` (files or folders) of folder `source` into folder `target`, replacing those there; entries
    absent from `source` are removed from `target`, and nothing else in `target` is touched. `last` is removed
    first and moved last, so a reader that requires it never sees a mix of old and new entries."""
    os.makedirs(target, exist_ok=True)
    if os.path.lexists(os.path.join(target, last)):
        os.remove(os.path.join(target, last))
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(target)), prefix=".old-") as old:
        for entry in entries:
            here, there = os.path.join(source, entry), os.path.join(target, entry)
            if entry == last:
                continue
            if os.path.lexists(there):
                os.replace(there, os.path.join(old, entry))
            if os.path.lexists(here):
                os.replace(here, there)
    if os.path.lexists(os.path.join(source, last)):
        os.replace(os.path.join(source, last), os.path.join(target, last))


def check_writable_file(path: Path, what: str = "the output") -> None:
    """ValueError unless a file can be written at `path` (made with its parent folders): it is no folder and no
    symbolic link, and its folder is writable. Call it before long work whose result goes there."""
    path = os.path.abspath(str(path))
    if os.path.islink(path):
        raise ValueError(f"{what}: {path} is a symbolic link; give a real file (tfdisc never writes through links).")
    if os.path.isdir(path):
        raise ValueError(f"{what}: {path} is a folder; give a file name, e.g. {os.path.join(path, 'report.json')}.")
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"{what}: cannot write in {folder} ({error.strerror}); choose a writable folder.") from None


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_json_atomic(path: Path, obj: object) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


class LockedError(RuntimeError):
    """Another process holds a lock; the message names it and its pid."""


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if needed, never followed if it is a link).

    `what` names the locked thing in the error: LockedError if another process holds the lock, ValueError if
    `path` is a symbolic link (a link could point the pid we write at someone else's file).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link; remove it (tfdisc never writes through links).") from None
        raise
    with os.fdopen(fd, "r+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{what} is in use by another process (pid {lock.read().strip() or '?'}); wait for it "
                              "to end.") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield
