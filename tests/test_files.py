"""tfdisc.files: atomic writes, locks that never follow links, and writes that keep other people's files."""

import os

import pytest

from tfdisc import files


def test_a_failed_atomic_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "record.json"
    files.write_text_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with files.atomic_write(path) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_replace_entries_keeps_everything_else(tmp_path):
    source, target = tmp_path / "new", tmp_path / "target"
    source.mkdir(), target.mkdir()
    (source / "model.pb").write_text("new model")
    (source / "variables").mkdir()
    (target / "model.pb").write_text("old model")
    (target / "assets").mkdir()
    (target / "notes.txt").write_text("theirs")
    files.replace_entries(source, target, ("model.pb", "variables", "assets"), last="model.pb")
    assert (target / "model.pb").read_text() == "new model" and (target / "variables").is_dir()
    assert not (target / "assets").exists() and (target / "notes.txt").read_text() == "theirs"


def test_a_lock_is_exclusive_and_never_follows_a_link(tmp_path):
    lock = tmp_path / ".lock"
    with files.exclusive_lock(str(lock), "The run"):
        assert lock.read_text() == str(os.getpid())
    (tmp_path / "theirs").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "theirs")
    with pytest.raises(ValueError, match="is a symbolic link"):
        with files.exclusive_lock(str(tmp_path / "link"), "The run"):
            pass
    assert (tmp_path / "theirs").read_text() == "keep"


def test_a_second_holder_is_told_who_holds_the_lock(tmp_path):
    import fcntl

    with open(tmp_path / ".lock", "w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(files.LockedError, match=r"The run is in use by another process \(pid 4242\)"):
            with files.exclusive_lock(str(tmp_path / ".lock"), "The run"):
                pass


@pytest.mark.parametrize("make, message", [(lambda p: p.mkdir(), "is a folder"),
                                           (lambda p: p.symlink_to("/etc/hostname"), "is a symbolic link")])
def test_check_writable_file_refuses_folders_and_links(tmp_path, make, message):
    make(tmp_path / "out.json")
    with pytest.raises(ValueError, match=message):
        files.check_writable_file(tmp_path / "out.json", "--output")
    files.check_writable_file(tmp_path / "new" / "out.json", "--output")  # a new folder is fine
