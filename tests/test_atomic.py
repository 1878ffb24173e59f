"""The one atomic writer: whole files or none, modes kept, read-only files kept,
errors naming the target, temporary names that fit, partial files removable."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from napari_kmeans_quantize import _atomic
from napari_kmeans_quantize._atomic import (
    atomic_write,
    check_target,
    remove_partial_files,
    replacing_read_only,
)


def _write(data: bytes):
    return lambda f: f.write(data)


def test_new_file_has_the_usual_mode_and_no_temp_left(tmp_path):
    out = atomic_write(tmp_path / "a.bin", _write(b"new"))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_replaced_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    target.chmod(mode)
    atomic_write(target, _write(b"new"))
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_read_only_file_is_refused_unless_asked(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    target.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only") as info:
        atomic_write(target, _write(b"new"))
    assert info.value.filename == str(target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]
    with replacing_read_only():
        atomic_write(target, _write(b"new"))
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o444
    atomic_write(target, _write(b"newer"), replace_read_only=True)
    assert target.read_bytes() == b"newer"
    assert not _atomic._replace_read_only


def test_a_250_character_name_works(tmp_path):
    name = "n" * 246 + ".png"
    out = atomic_write(tmp_path / name, _write(b"x"))
    assert os.path.basename(out) == name
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_name_too_long_is_refused_before_writing(tmp_path):
    with pytest.raises(OSError, match="too long") as info:
        check_target(tmp_path / ("n" * 300 + ".png"))
    assert info.value.errno == errno.ENAMETOOLONG
    assert list(tmp_path.iterdir()) == []


def test_errors_name_the_target_not_the_temporary_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def full_disk(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as info:
        atomic_write(target, full_disk)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(target)
    assert ".tmp" not in str(info.value)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_missing_folder_and_folder_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        atomic_write(tmp_path / "nope" / "a.bin", _write(b"x"))
    assert info.value.filename == str(tmp_path / "nope" / "a.bin")
    assert str(tmp_path / "nope") in info.value.strerror
    (tmp_path / "d.bin").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "d.bin", _write(b"x"))


def test_remove_partial_files_removes_writes_in_progress(tmp_path):
    started, release = threading.Event(), threading.Event()

    def slow(f):
        f.write(b"part")
        started.set()
        release.wait(10)

    errors = []

    def run():
        try:
            atomic_write(tmp_path / "a.bin", slow)
        except OSError as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    assert len(list(tmp_path.iterdir())) == 1  # the temporary file
    remove_partial_files()
    assert list(tmp_path.iterdir()) == []
    release.set()
    thread.join(10)
    # The rename finds no temporary file: the target never appears.
    assert errors and not (tmp_path / "a.bin").exists()
    assert list(tmp_path.iterdir()) == []


def test_replaced_file_keeps_its_owner_where_the_user_may_give_files_away(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    if os.geteuid() == 0:  # root replacing another user's file keeps it theirs
        os.chown(target, 12345, 12345)
        expected = (12345, 12345)
    else:  # anyone else writes a file of their own, as with any other file
        expected = (os.getuid(), os.getgid())
    atomic_write(target, _write(b"new"))
    st = target.stat()
    assert (st.st_uid, st.st_gid) == expected


def test_leftovers_of_a_killed_writer_are_removed_on_the_next_write(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".a.bin.{dead_pid:x}-0123abcd.tmp"
    live = tmp_path / f".a.bin.{os.getpid():x}-4567cdef.tmp"  # a write in progress
    other = tmp_path / f".b.bin.{dead_pid:x}-0123abcd.tmp"  # another target's
    mine = tmp_path / ".a.bin.notes.tmp"  # not a name the writer makes
    for path in (stale, live, other, mine):
        path.write_bytes(b"part")
    atomic_write(tmp_path / "a.bin", _write(b"new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.bin", live.name, other.name, mine.name]
    )
