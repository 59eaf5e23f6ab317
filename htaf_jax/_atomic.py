"""Files that a killed process leaves whole or not at all.

    with replace_on_close(path) as f:      # text; "wb" for bytes
        json.dump(record, f)

The content goes to a hidden temporary file beside ``path`` (same directory, so
the same file system), which ``os.replace`` then puts in place in one step: a
reader, or a rerun after SIGKILL, sees the old file or the new one, never half
of one. A kill before the rename leaves the temporary file
(``.<name>.tmp-<pid>``), which nothing reads. Durability across a power loss
(fsync) is not attempted: the point is process kills.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO, Iterator

__all__ = ["replace_on_close", "temporary_name"]


def temporary_name(path: str) -> str:
    """The hidden file beside ``path`` that ``replace_on_close`` writes first."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def replace_on_close(path: str, mode: str = "w") -> Iterator[IO]:
    """An open file whose content replaces ``path`` when the block ends without error
    (on an error the temporary file is removed and ``path`` is left as it was)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"replace_on_close writes whole files: mode 'w' or 'wb', got {mode!r}")
    tmp = temporary_name(path)
    try:
        with open(tmp, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
