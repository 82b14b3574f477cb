"""Writing a whole folder (a model, a checkpoint) so that nothing is lost on the way.

:func:`atomic_folder` builds the new folder under a temporary sibling name and swaps it in only
when it is complete. Its rules:

- It never deletes or replaces what xmc did not write. The target may be absent, an empty folder,
  or a folder that ``owned`` recognises (by default: a valid ``xmc.json``); anything else is refused
  with :class:`OutputExistsError` before any work starts (call :func:`check_target` early).
- Replacing an owned folder needs ``overwrite=True``.
- On Linux the old and new folders are exchanged with one ``renameat2(RENAME_EXCHANGE)`` call, so at
  every instant the target path holds either the complete old folder or the complete new one. Where
  that call is missing (other systems, some file systems) the old folder is first renamed to a
  backup sibling; a crash between that rename and the next leaves no target but the intact backup,
  which the next :func:`atomic_folder` on the same target puts back before doing anything else.
- Files are fsynced before the swap, so the new folder is durable, not just complete, once the
  block returns (power loss is covered as far as the file system honours fsync).
- Temporary siblings left by a killed process are recognised by their name and a marker file (or
  an owned manifest) and removed on the next write to the same target; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from xmc.exceptions import XMCError
from xmc.utils.faults import kill_point
from xmc.utils.io import default_mode, fsync_dir

MARKER = ".xmc-partial"  # written into every temporary folder; never present in a finished one
_TMP_INFIX = ".xmc-tmp-"
_OLD_INFIX = ".xmc-old-"


class OutputExistsError(XMCError, FileExistsError):
    """The output path holds something xmc may not replace (or may only with ``overwrite``)."""


def is_xmc_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder/xmc.json`` is a JSON object with a format version and a kind."""
    path = Path(folder) / "xmc.json"
    try:
        if path.stat().st_size > 64 << 20:
            return False
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "format_version" in manifest and "kind" in manifest


def check_target(target: str | os.PathLike, overwrite: bool = False,
                 owned: Callable[[Path], bool] = is_xmc_folder) -> None:
    """Raise :class:`OutputExistsError` unless :func:`atomic_folder` may write ``target``."""
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir():
        raise OutputExistsError(f"{target} exists and is not a folder; choose another output path")
    if not any(target.iterdir()):
        return
    if not owned(target):
        raise OutputExistsError(f"{target} exists and is not an xmc model folder; xmc writes only to a new or "
                                "empty folder, or replaces an xmc model with --overwrite. Choose another path.")
    if not overwrite:
        raise OutputExistsError(f"{target} already holds an xmc model; pass --overwrite (overwrite=True) to "
                                "replace it, or choose another path")


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike, overwrite: bool = False,
                  owned: Callable[[Path], bool] = is_xmc_folder) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only when the block succeeds (see the
    module docstring for what is and is not guaranteed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target, owned)
    check_target(target, overwrite, owned)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP_INFIX}", dir=target.parent))
    tmp.chmod(default_mode(folder=True))
    (tmp / MARKER).touch()
    try:
        yield tmp
        if not (target.parent / MARKER).is_file():  # inside another temporary folder, its commit syncs
            _sync_tree(tmp)
        kill_point("folder:written")
        (tmp / MARKER).unlink()
        _commit(tmp, target, owned)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, target: Path, owned: Callable[[Path], bool]) -> None:
    check_target(target, True, owned)  # the target may have changed while we worked
    if not target.exists():
        tmp.rename(target)
    elif _exchange(tmp, target):
        kill_point("folder:exchanged")
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
    else:
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}{_OLD_INFIX}", dir=target.parent))
        backup.rmdir()
        target.rename(backup)
        kill_point("folder:moved-aside")
        tmp.rename(target)
        shutil.rmtree(backup, ignore_errors=True)
    fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _siblings(target: Path, infix: str) -> list[Path]:
    prefix = f".{target.name}{infix}"
    try:
        return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.is_dir()
                      and not p.is_symlink())
    except OSError:
        return []


def _recover(target: Path, owned: Callable[[Path], bool]) -> None:
    """Undo what a killed writer of ``target`` left: put back a backup if the target is missing,
    remove the temporary folders it marked as its own."""
    backups = [p for p in _siblings(target, _OLD_INFIX) if owned(p)]
    if backups and not target.exists():
        backups.pop().rename(target)
    for leftover in _siblings(target, _TMP_INFIX) + backups:
        if (leftover / MARKER).is_file() or owned(leftover):
            shutil.rmtree(leftover, ignore_errors=True)


def _sync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)
