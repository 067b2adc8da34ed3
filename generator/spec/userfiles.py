"""Reading a file the user names (`--matrix`, a profile, `extra_ca_certificates`, `publish --previous`).

Why not a size check on `stat()` and then `read_bytes()`: `st_size` is 0 for /dev/zero, a FIFO or a /proc
file, so such a check bounds nothing; `--matrix /dev/zero` read until the kernel killed the process, and a
FIFO with no writer hung it. Here the file is opened once (nothing can be swapped in between a check and the
read), refused unless it is a regular file, and never read past `limit` + 1 bytes whatever its size says.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_BYTES = 1 << 20  # a matrix or profile is a few KiB; anything near a MiB is a mistake or an attack

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


class Refused(OSError):
    """A file `read_bounded` does not read. An OSError, so that callers that report `strerror` for a missing
    or unreadable file report this one the same way, in words."""


def read_bounded(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the regular file at `path`; Refused when it is anything else or holds more than `limit`.

    OSError (Refused included) for anything that cannot be read; its `strerror` is one line for a user.
    """
    # O_NONBLOCK: opening a FIFO for reading waits for a writer; with it the open returns and fstat refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            raise Refused(errno.EINVAL, f"not a regular file ({kind})")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        # The real size when the file says it (a regular file on disk), else what was read stands for it.
        shown = info.st_size if info.st_size > limit else f"more than {limit}"
        raise Refused(errno.EFBIG, f"file is {shown} bytes; the limit is {limit}")
    return b"".join(chunks)
