"""The server as an operating-system process: its pidfile, replacing a running instance, systemd."""

from __future__ import annotations

import logging
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from indextts2.errors import ConfigError

__all__ = ["STOP_MARGIN_SECONDS", "Pidfile", "render_systemd_unit"]

logger = logging.getLogger(__name__)

# How long a replaced instance gets past its own grace period before it is killed.
_REPLACE_MARGIN_SECONDS = 10.0
# systemd's TimeoutStopSec past --grace-period: the server exits within a few seconds of the end of
# its grace period (uvicorn's backstop is 5 s), and systemd kills it only 15 s after.
STOP_MARGIN_SECONDS = 15.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, but belongs to someone else
    try:  # a zombie has exited already; only its parent has not collected it yet
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] != "Z"


def _is_a_server(pid: int) -> bool:
    """Whether ``pid`` still runs a ``serve`` command (so a reused pid is never signalled)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():
        return True  # no /proc here: trust the pidfile
    try:
        argv = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in argv


class Pidfile:
    """A file holding the pid of the server that listens with it.

    ``claim`` refuses to start while another live server holds the file, unless asked to replace it:
    then that server gets SIGTERM (it finishes its in-flight work within its grace period) and is
    waited for, so that the new one can take over the port.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> int | None:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read pidfile {self.path}: {exc.strerror}") from exc
        return int(text) if text.isdigit() else None

    def running_pid(self) -> int | None:
        """The pid of a live server recorded in the file, if there is one (not this process)."""
        pid = self.read()
        if pid is None or pid == os.getpid() or not _alive(pid) or not _is_a_server(pid):
            return None
        return pid

    def claim(self, *, replace: bool, wait_seconds: float) -> None:
        """Record this process, after stopping a recorded live server if ``replace``.

        Raises:
            ConfigError: another server is running and ``replace`` is off, or it would not stop.
        """
        pid = self.running_pid()
        if pid is not None:
            if not replace:
                raise ConfigError(
                    f"another indextts2 server (pid {pid}) is running with pidfile {self.path}; "
                    "stop it, or pass --replace to take over from it"
                )
            self._stop(pid, wait_seconds + _REPLACE_MARGIN_SECONDS)
        self.write()

    def _stop(self, pid: int, wait_seconds: float) -> None:
        logger.warning(
            "replacing the server with pid %d (SIGTERM, up to %.0f s to finish)", pid, wait_seconds
        )
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise ConfigError(f"not allowed to stop the server with pid {pid}: {exc.strerror}") from exc
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
        raise ConfigError(
            f"the server with pid {pid} did not stop within {wait_seconds:.0f} s; stop it by hand "
            f"(kill {pid})"
        )

    def write(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".pid-", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="ascii") as stream:
                stream.write(f"{os.getpid()}\n")
            os.replace(temporary, self.path)
        except OSError as exc:
            raise ConfigError(f"cannot write pidfile {self.path}: {exc.strerror}") from exc

    def release(self) -> None:
        """Remove the file if it still names this process."""
        if self.read() == os.getpid():
            self.path.unlink(missing_ok=True)


def render_systemd_unit(
    serve_args: list[str],
    *,
    executable: list[str] | None = None,
    user: str | None = None,
    home: Path | None = None,
    writable: list[Path] | None = None,
    grace_period: float = 30.0,
) -> str:
    """A systemd service unit that runs ``indextts2 serve`` with these arguments.

    Args:
        serve_args: the arguments after ``serve``.
        executable: the command that runs ``indextts2`` (default: the one running now).
        user: the account to run as (default: the current user).
        home: INDEXTTS2_HOME for the service (model store, voices, keys).
        writable: directories the service may write (the home, the voices directory...).
        grace_period: the server's ``--grace-period``; systemd waits that long after SIGTERM plus
            :data:`STOP_MARGIN_SECONDS` (TimeoutStopSec) before it kills the server.
    """
    program = executable or _current_program()
    account = user or _current_user()
    exec_start = shlex.join([*program, "serve", *serve_args])
    lines = [
        "[Unit]",
        "Description=indextts2 speech server (IndexTTS2)",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={account}",
        f"ExecStart={exec_start}",
    ]
    if home is not None:
        lines.append(f"Environment=INDEXTTS2_HOME={home}")
    lines += [
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=5",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={math.ceil(grace_period + STOP_MARGIN_SECONDS)}",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "ProtectSystem=full",
    ]
    for path in writable or []:
        lines.append(f"ReadWritePaths={path}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _current_program() -> list[str]:
    launched = Path(sys.argv[0])
    if launched.name == "indextts2" and launched.exists():
        return [str(launched.resolve())]
    return [sys.executable, "-m", "indextts2"]


def _current_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "indextts2"
