"""Restarts without downtime: a running server hands its listening socket to its replacement.

Every ``indextts2 serve`` listens for its replacement on a Unix socket beside its pidfile
(``serve-7860.pid`` -> ``serve-7860.sock``, mode 0600, only the same user may connect). ``serve
--replace`` then:

1. loads and warms its model while the old server keeps serving;
2. asks the old server for its listening socket (``SCM_RIGHTS``): from then on both accept
   connections from the one queue of that socket, so no connection is ever refused or reset;
3. once it serves, tells the old server to drain: the old one stops accepting, finishes what it has
   (requests on its open connections are served, not refused; ``Connection: close`` ends them),
   and exits within its grace period.

A server that offers no handover (started by an older indextts2, or a socket path too long for
``AF_UNIX``) is replaced the old way: stopped first, then the port is taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["HandoverServer", "handover_path", "request_drain", "take_listener"]

logger = logging.getLogger(__name__)

_MAX_UNIX_PATH = 107  # sun_path holds 108 bytes, the terminating NUL included
_TIMEOUT_SECONDS = 10.0
_LISTENER = b"listener\n"
_DRAIN = b"drain\n"
_OK = b"ok\n"


def handover_path(pidfile: Path) -> Path:
    """Where the server recorded in ``pidfile`` listens for its replacement."""
    return pidfile.with_suffix(".sock")


def _usable(path: Path) -> bool:
    return len(os.fsencode(str(path))) <= _MAX_UNIX_PATH


class HandoverServer:
    """The old server's side: hands out ``listener`` and starts the drain when asked.

    Args:
        path: the Unix socket's path (see :func:`handover_path`).
        listener: the TCP socket this server accepts connections on.
        on_drain: called (on this object's thread) when the replacement serves.
    """

    def __init__(self, path: Path, listener: socket.socket, on_drain: Callable[[], None]) -> None:
        self.path = path
        self._listener = listener
        self._on_drain = on_drain
        self._socket: socket.socket | None = None
        self._inode: int | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Listen for a replacement; False (logged) when this path cannot be used."""
        if not _usable(self.path):
            logger.warning(
                "no restart without downtime: the handover socket path %s is longer than %d bytes "
                "(use a shorter --pidfile)",
                self.path,
                _MAX_UNIX_PATH,
            )
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale one, or the replaced server's (it no longer needs it)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)  # created 0600: only this user may take the port over
        try:
            server.bind(str(self.path))
        except OSError as exc:
            server.close()
            logger.warning("no restart without downtime: cannot listen on %s: %s", self.path, exc)
            return False
        finally:
            os.umask(old_umask)
        server.listen(2)
        self._socket = server
        self._inode = os.stat(self.path).st_ino
        self._thread = threading.Thread(target=self._serve, name="indextts2-handover", daemon=True)
        self._thread.start()
        return True

    def close(self) -> None:
        """Stop listening; the socket file goes unless a replacement has put its own there."""
        server, self._socket = self._socket, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                self.path.unlink()

    def _serve(self) -> None:
        while self._socket is not None:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            with connection:
                try:
                    self._answer(connection)
                except OSError as exc:
                    logger.warning("a handover request failed: %s", exc)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(_TIMEOUT_SECONDS)
        uid = _peer_uid(connection)
        if uid is not None and uid not in (os.getuid(), 0):
            logger.warning("refused a handover request from user id %d", uid)
            return
        request = connection.recv(64)
        if request == _LISTENER:
            socket.send_fds(connection, [_OK], [self._listener.fileno()])
            logger.warning("handed the listening socket to a replacement server")
        elif request == _DRAIN:
            connection.sendall(_OK)
            logger.warning("the replacement server is serving: draining")
            self._on_drain()


def _peer_uid(connection: socket.socket) -> int | None:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    credentials = connection.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


def _ask(path: Path, request: bytes) -> tuple[bytes, list[int]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(_TIMEOUT_SECONDS)
        client.connect(str(path))
        client.sendall(request)
        message, fds, _flags, _address = socket.recv_fds(client, 64, 1)
        return message, fds


def take_listener(path: Path) -> socket.socket | None:
    """The running server's listening socket, or None when it offers no handover."""
    if not _usable(path) or not path.exists():
        return None
    try:
        message, fds = _ask(path, _LISTENER)
    except OSError as exc:
        logger.warning("the running server did not hand its socket over (%s)", exc)
        return None
    if message != _OK or not fds:
        for fd in fds:
            os.close(fd)
        return None
    return socket.socket(fileno=fds[0])


def request_drain(path: Path) -> bool:
    """Tell the server that handed its socket over to drain and exit; False if it did not answer."""
    try:
        message, _ = _ask(path, _DRAIN)
    except OSError as exc:
        logger.warning("could not tell the replaced server to drain (%s)", exc)
        return False
    return message == _OK
