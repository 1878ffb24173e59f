"""Write a file whole or not at all: a temporary file beside the target, then a rename.

Every file the package writes (indexed images, tables, plots) goes through
``atomic_write`` so that an error, a full disk or a kill mid-write never leaves a
half-written file where the user's file was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> str:
    """Call ``write(fileobj)`` on a temporary file next to `path`, then rename it.

    The temporary file is created with the usual permissions (0o666 minus the
    umask), so the final file is like any other the user writes. On any error the
    temporary file is removed and the target path is left untouched.
    """
    target = Path(os.fspath(path))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist.")
    if target.is_dir():
        raise IsADirectoryError(f"{str(target)!r} is a folder, not a file path.")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - astronomically unlikely
            continue
    os.close(fd)
    try:
        # Reopened by name: some writers (tifffile) want a named file object.
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(target)
