"""Camera recordings' files: where they may lie, and deleting one there without following a symbolic link.

A library's recordings lie in its recordings folder (`[recordings]` in the config, kodex.config). An
import or a registration names a file by its `location`; one that lies outside the folder once `..` and
symbolic links are resolved is refused (`outside_folder`). The nightly purge deletes a file only inside the
folder, whatever a stored row says (rows stored before the folder was enforced included): it opens the folder
and walks down to the file one directory at a time relative to the directory it holds open, never following a
symbolic link (`O_NOFOLLOW`), and unlinks the last component relative to its directory (`dir_fd`). A
directory swapped for a link between a check and the unlink therefore cannot redirect the deletion; a file
swapped for a link loses the link, never the file it points to.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from kodex.errors import PurgeFailed

__all__ = ["OUTSIDE", "delete_recording", "outside_folder"]

OUTSIDE = "outside the recordings folder"


def outside_folder(location: str, folder: Path) -> bool:
    """True unless `location` names a file strictly inside `folder` once `..` and symbolic links are resolved."""
    path = Path(location)
    if not path.is_absolute():
        return True  # relative to what? a location is an absolute path
    try:
        resolved, root = path.resolve(strict=False), folder.resolve(strict=False)
    except (OSError, RuntimeError):  # a loop of links, a name too long: not somewhere kodex can vouch for
        return True
    return resolved == root or not resolved.is_relative_to(root)


def delete_recording(location: str, folder: Path) -> None:
    """Delete the file at `location` inside `folder`; a file (or folder) already gone counts as deleted.

    Raises PurgeFailed when the location lies outside the folder, a directory on the way or the file itself is
    a symbolic link, the location names a directory, or the file cannot be deleted.
    """
    parts = _inside(location, folder)
    try:
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # the folder itself is the operator's to link
    except FileNotFoundError:
        return  # no folder, no file
    except OSError as error:
        raise _cannot(error) from None
    try:
        for name in parts[:-1]:
            try:
                below = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            except FileNotFoundError:
                return
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PurgeFailed(
                        "the recording's location passes through a symbolic link or a file inside the recordings "
                        "folder; kodex deletes nothing through a link, so the file stays: move it to its real place "
                        "in the folder and import its record with that location"
                    ) from None
                raise _cannot(error) from None
            os.close(directory)
            directory = below
        _unlink(parts[-1], directory)
    finally:
        os.close(directory)


def _inside(location: str, folder: Path) -> list[str]:
    """The location's components below the folder (as written, or as the folder resolves), or PurgeFailed."""
    path = PurePosixPath(location)
    for root in (PurePosixPath(folder), PurePosixPath(folder.resolve(strict=False))):
        if path.is_absolute() and path.is_relative_to(root):
            parts = list(path.relative_to(root).parts)
            if parts and not any(part in ("..", ".") for part in parts):
                return parts
    raise PurgeFailed(
        f"the recording's file is {OUTSIDE}; kodex deletes nothing there, so the file and the row stay: move the "
        "file into the library's recordings folder and import its record with the new location"
    )


def _unlink(name: str, directory: int) -> None:
    try:
        found = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return  # already gone (e.g. deleted before a crash, then the run was repeated)
    except OSError as error:
        raise _cannot(error) from None
    if stat.S_ISLNK(found.st_mode):
        raise PurgeFailed(
            "the recording's location is a symbolic link; kodex deletes no file through a link, so the link, the "
            "file and the row stay: import the record with the real file's location in the recordings folder"
        )
    try:
        os.unlink(name, dir_fd=directory)  # a link swapped in since the check is removed itself, never followed
    except FileNotFoundError:
        return
    except OSError as error:
        raise _cannot(error) from None


def _cannot(error: OSError) -> PurgeFailed:
    return PurgeFailed(
        f"the recording's file could not be deleted ({type(error).__name__}); "
        "its row stays and the purge is retried the next night"
    )
