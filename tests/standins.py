"""Stand-ins for what a registry call meets, all real: sockets on 127.0.0.1 and executables on PATH.

- `silent_server()`: a TCP server that accepts every connection and never says a word (a registry that
  hangs), in a thread of the test;
- `closed_port()`: a port on 127.0.0.1 with nothing listening (a registry that is down);
- `write_helper()`: a Docker credential helper (`docker-credential-<name>`), a script that speaks the
  helper protocol: `get` reads the server on stdin and prints `{"Username", "Secret"}`, or fails.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """(host:port, the connections accepted so far): accepted, held open, never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


@contextmanager
def closed_port() -> Iterator[str]:
    """host:port where a connection is refused: bound (so no one else takes it), never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{s.getsockname()[1]}"


def write_helper(folder: Path, name: str, answer: dict[str, str] | None, *, exit_status: int = 0) -> Path:
    """`folder/docker-credential-<name>`: `get` logs the server it was asked for (`<name>.asked`) and
    prints `answer` as JSON (None: "credentials not found in native keychain", exit 1), or exits
    `exit_status` with a message when that is not 0."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"docker-credential-{name}"
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"answer, status, log = {json.dumps(answer)!r}, {exit_status}, {str(folder / f'{name}.asked')!r}\n"
        "assert sys.argv[1:] == ['get'], sys.argv\n"
        "with open(log, 'a') as f:\n"
        "    f.write(sys.stdin.read() + '\\n')\n"
        "if status:\n"
        "    print('helper broke: cannot reach the keyring'); sys.exit(status)\n"
        "if json.loads(answer) is None:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        "print(answer)\n"
    )
    path.chmod(0o755)
    return path
