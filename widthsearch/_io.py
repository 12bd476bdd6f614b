"""Writing files so that a reader never sees half of one and a failure leaves none."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from widthsearch.errors import OutputPathError


def check_output_path(path: str | os.PathLike, option: str = "output") -> Path:
    """``path`` as a :class:`Path`, after checking that a file can be written there.

    Commands call this before any work, so a typo in a folder name costs nothing and leaves
    nothing behind: the folder must exist and be writable, and ``path`` must not be a folder.
    ``option`` names the flag in the message (``-o``, ``--py``).

    Raises:
        OutputPathError: the folder is missing or not writable, or ``path`` is a folder.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir() or not path.name:
        raise OutputPathError(f"{option} {path} is a folder; give a file name in it")
    if not folder.is_dir():
        raise OutputPathError(
            f"{option} {path}: there is no folder '{folder}'; create it first (mkdir -p {folder})"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{option} {path}: the folder '{folder}' is not writable")
    return path


def write_atomic(path: str | os.PathLike, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` through a temporary file in its folder, then rename.

    Raises:
        OutputPathError: the file cannot be written (no such folder, no permission, disk full).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputPathError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
