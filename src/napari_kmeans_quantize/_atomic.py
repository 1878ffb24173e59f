"""Write a file whole or not at all: a temporary file beside the target, then a rename.

Every file the package writes (indexed images, tables, plots, contact sheets) goes
through ``atomic_write`` so that an error, a full disk or a kill mid-write never
leaves a half-written file where the user's file was. A file it replaces keeps its
permission bits (a private 0600 file stays private); a read-only one is refused
unless replacing read-only files was asked for (:func:`replacing_read_only`).
The temporary files being written are listed so that a signal handler can remove
them (:func:`remove_partial_files`) before the process exits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

# The temporary files of the writes in progress (several threads may write).
_partial: set[Path] = set()
_replace_read_only = False
_NAME_MAX = 255
# A temporary file, ".NAME.PID-TOKEN.tmp": the target's name, the writer's pid
# (hex), a random token.
_TEMP_NAME = re.compile(r"\.(.*)\.([0-9a-f]{1,16})-[0-9a-f]{8}\.tmp")


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[bytes]], None],
    *,
    replace_read_only: bool | None = None,
) -> str:
    """Call ``write(fileobj)`` on a temporary file next to `path`, then rename it.

    A new file gets the usual permissions (0o666 minus the umask); a replaced
    file keeps its mode. On any error the temporary file is removed, the target
    path is left untouched, and an OSError names `path` (not the temporary file).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its folder must exist.
    write : callable
        Called once with the open binary file object.
    replace_read_only : bool or None, optional
        Replace a read-only file at `path`. None (default) follows
        :func:`replacing_read_only` (off unless inside it).

    Returns
    -------
    path : str
        The path written.

    Raises
    ------
    FileNotFoundError
        If the folder of `path` does not exist.
    IsADirectoryError
        If `path` is a folder.
    PermissionError
        If `path` is a read-only file and replacing it was not asked for.
    OSError
        If writing fails (e.g. the disk is full), naming `path`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = atomic_write(pathlib.Path(tmp) / "a.txt", lambda f: f.write(b"hi"))
    ...     pathlib.Path(out).read_bytes()
    b'hi'
    """
    target = Path(os.fspath(path))
    if replace_read_only is None:
        replace_read_only = _replace_read_only
    old = check_target(target, replace_read_only=replace_read_only)
    tmp = _create_temp(target)
    try:
        try:
            # Reopened by name: some writers (tifffile) want a named file object.
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            if old is not None:
                _copy_owner_and_mode(tmp, old)
            os.replace(tmp, target)
        except OSError as err:
            renamed = _naming_target(err, tmp, target)
            if renamed is err:
                raise
            raise renamed from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _partial.discard(tmp)
    return str(target)


def check_target(
    path: str | os.PathLike, *, replace_read_only: bool = False
) -> os.stat_result | None:
    """Check that `path` can be written; returns the stat of the file it replaces.

    Raises as :func:`atomic_write` does, before anything is written, and with an
    OSError when the file name is longer than the file system allows.
    """
    target = Path(os.fspath(path))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, f"its folder {str(folder)!r} does not exist", str(target)
        )
    if len(os.fsencode(target.name)) > _name_max(folder):
        raise OSError(
            errno.ENAMETOOLONG,
            f"file name too long ({len(os.fsencode(target.name))} bytes, the file "
            f"system allows {_name_max(folder)})",
            str(target),
        )
    if hasattr(os, "statvfs") and os.statvfs(folder).f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES, "no permission to write into its folder", str(target)
        )
    try:
        old = os.stat(target)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(old.st_mode):
        raise IsADirectoryError(
            errno.EISDIR, "is a folder, not a file path", str(target)
        )
    if not replace_read_only and is_read_only(target, old):
        raise PermissionError(
            errno.EACCES,
            f"read-only file (mode {stat.filemode(old.st_mode)}), not replaced",
            str(target),
        )
    return old


def is_read_only(path: str | os.PathLike, st: os.stat_result | None = None) -> bool:
    """True if `path` is an existing file its mode or owner protects from writing.

    Write bits are looked at as well as access: root may write anything, but a
    file with no write bit was meant to be kept.
    """
    try:
        st = st if st is not None else os.stat(path)
    except FileNotFoundError:
        return False
    return not st.st_mode & 0o222 or not os.access(path, os.W_OK)


@contextlib.contextmanager
def replacing_read_only(enabled: bool = True) -> Iterator[None]:
    """Within this block, :func:`atomic_write` replaces read-only files too.

    Process-wide (every thread), for a command run with ``--force``.
    """
    global _replace_read_only
    saved, _replace_read_only = _replace_read_only, enabled
    try:
        yield
    finally:
        _replace_read_only = saved


def remove_partial_files() -> None:
    """Remove the temporary files of every write in progress (for signal handlers)."""
    for tmp in list(_partial):
        with contextlib.suppress(OSError):
            tmp.unlink()
        _partial.discard(tmp)


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not POSIX
        return _NAME_MAX


def _create_temp(target: Path) -> Path:
    """An empty new file beside `target` whose name fits where the target's does.

    The name holds the writer's process id, ``.NAME.PID-TOKEN.tmp``, so that the
    leftovers of a writer killed outright (SIGKILL, a power cut) can be told
    from the files of writes in progress, and are removed here.
    """
    folder = target.parent
    # The target's name, cut so that the temporary name is no longer than a
    # legal file name (a 250-character target must work).
    tag = f"{os.getpid():x}"
    room = max(0, _name_max(folder) - 15 - len(tag))
    stem = os.fsencode(target.name)[:room].decode(errors="ignore")
    remove_stale_temps(folder, stem)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = folder / f".{stem}.{tag}-{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:  # pragma: no cover - astronomically unlikely
            continue
        except OSError as err:
            raise _naming_target(err, tmp, target) from err
        _partial.add(tmp)
        os.close(fd)
        return tmp


def remove_stale_temps(folder: Path, stem: str | None = None) -> None:
    """Remove the temporary files in `folder` (of the target named `stem`, or of
    any target) left by processes that died, e.g. worker processes stopped
    mid-write."""
    try:
        entries = [e.name for e in os.scandir(folder) if e.name.startswith(".")]
    except OSError:
        return
    for name in entries:
        match = _TEMP_NAME.fullmatch(name)
        if match is None or (stem is not None and match.group(1) != stem):
            continue
        if _process_alive(int(match.group(2), 16)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(folder / name)


def _process_alive(pid: int) -> bool:
    if not hasattr(os, "kill") or os.name == "nt":  # pragma: no cover - POSIX only
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, someone else's
        return True
    return True


def _copy_owner_and_mode(tmp: Path, old: os.stat_result) -> None:
    if hasattr(os, "chown") and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
        # Only root (or a member of the group) may give a file away; otherwise the
        # new file is the user's own, as any file they write.
        with contextlib.suppress(OSError):
            os.chown(tmp, old.st_uid, old.st_gid)
    os.chmod(tmp, stat.S_IMODE(old.st_mode))


def _naming_target(err: OSError, tmp: Path, target: Path) -> OSError:
    """The same error naming the target where it named the temporary file (or
    nothing), so that a message shows the user's path."""
    if err.filename is not None and os.fspath(err.filename) != str(tmp):
        return err
    reason = err.strerror or str(err) or type(err).__name__
    try:
        return type(err)(err.errno, reason, str(target))
    except TypeError:  # pragma: no cover - an OSError subclass with its own args
        return OSError(err.errno, reason, str(target))
