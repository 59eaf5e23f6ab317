"""The work dir checked before training starts: one line naming the path when it cannot hold
a run (a file in its place, no permission, a read-only or full disk)."""

from __future__ import annotations

import errno
import os
import tempfile

# What a write fails with when the disk, not the run, is at fault.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
# Free space below which a run would fail at its first checkpoint or metrics line.
MIN_FREE_BYTES = 1 << 20


class WorkdirError(OSError):
    """The work dir cannot be created or written; the message names the path."""


def describe(error: OSError, path: str | None = None) -> str:
    """One line for an OSError met while writing a run: the path and what went wrong."""
    where = path or error.filename or "the work dir"
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
    }.get(error.errno or 0, error.strerror or str(error))
    return f"cannot write to {where}: {reason}"


def prepare_workdir(workdir: str) -> None:
    """Creates ``workdir`` if needed and checks that a file can be written in it and that
    the disk has room; raises WorkdirError naming the path otherwise."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(
            f"--workdir {workdir} is a file, not a directory; "
            f"name a directory (it is created if missing)"
        )
    try:
        os.makedirs(workdir, exist_ok=True)
    except NotADirectoryError:
        raise WorkdirError(
            f"--workdir {workdir}: a part of the path is a file, not a directory"
        ) from None
    except OSError as e:
        raise WorkdirError(describe(e, workdir)) from None
    try:
        with tempfile.TemporaryFile(dir=workdir) as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise WorkdirError(describe(e, workdir)) from None
    stat = os.statvfs(workdir)
    if stat.f_bavail * stat.f_frsize < MIN_FREE_BYTES:
        raise WorkdirError(describe(OSError(errno.ENOSPC, "no space"), workdir))
