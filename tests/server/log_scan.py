"""The server test run's own log, scanned for credentials when the run ends.

Every record of the ``indextts2`` loggers (at DEBUG) and every warning of any logger, emitted by the
in-process servers, goes to one file, written *without* the server's redaction; the logs of the
``indextts2 serve`` processes the tests start are added. When the session ends, a credential in
any of them (an API key, a JWT, an Authorization value) fails the run (conftest.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

CREDENTIAL = re.compile(
    r"itts2_[A-Za-z0-9_-]{20,}"  # an API key as `serve keys add` makes them
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."  # a JWT (a JSON header and payload)
    r"|(?i:authorization)\W{0,4}(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"  # a header's value
)

PROCESS_LOGS: list[Path] = []
"""Log files of the server processes started by the tests (server_helpers.ServerProcess)."""


def raw_handler(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    return handler


def credentials_in(paths: Iterable[Path]) -> list[str]:
    """``file:line: text`` of every line that holds a credential."""
    found = []
    for path in paths:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if CREDENTIAL.search(line):
                found.append(f"{path}:{number}: {line[:300]}")
    return found
