"""API keys: the keys file, hashing, and constant-time checking.

The keys file holds one key per line, never the key itself::

    # indextts2 API keys (indextts2 serve keys add/list/rm); only SHA-256 digests are stored
    alice sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 2026-11-24T21:00:00Z

Fields: a name (letters, digits, ``-``, ``_``, ``.``), the digest of the key, and when it was created.
Keys made by ``keys add`` are 256-bit random tokens, so one SHA-256 is enough to make the file useless
to a reader (a slow password hash protects guessable secrets, which these are not). A presented key is
hashed and compared with every stored digest using :func:`hmac.compare_digest`, always all of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from indextts2.errors import ConfigError, InvalidInput

__all__ = [
    "KeyRecord",
    "KeyRing",
    "credentials_from_header",
    "generate_key",
    "hash_key",
    "is_bearer",
    "read_keys_file",
]

KEY_PREFIX = "itts2_"
_DIGEST_PREFIX = "sha256:"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
logger = logging.getLogger(__name__)

_HEADER = "# indextts2 API keys (indextts2 serve keys add/list/rm); only SHA-256 digests are stored\n"


@dataclass(frozen=True)
class KeyRecord:
    """One API key as stored: its name, the digest of the key, and when it was made."""

    name: str
    digest: str
    created: str = ""


def generate_key() -> str:
    """A new random API key (256 bits, URL-safe)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key: ``sha256:<hex>``."""
    return _DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_key_name(name: str) -> str:
    if not _NAME_PATTERN.match(name):
        raise InvalidInput(
            f"key name {name!r} is not allowed; use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


def read_keys_file(path: Path) -> list[KeyRecord]:
    """Parse a keys file.

    Raises:
        ConfigError: the file is missing, unreadable, or has a malformed line (named by number).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"keys file {path} does not exist; create it with: indextts2 serve keys add NAME"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read keys file {path}: {exc.strerror}") from exc
    records: list[KeyRecord] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        if (
            len(fields) not in (2, 3)
            or not _NAME_PATTERN.match(fields[0])
            or not _DIGEST_PATTERN.match(fields[1])
        ):
            raise ConfigError(
                f"{path}, line {number}: expected 'NAME sha256:<64 hex digits> [CREATED]'; "
                "fix or delete the line (indextts2 serve keys add writes correct lines)"
            )
        records.append(KeyRecord(fields[0], fields[1], fields[2] if len(fields) == 3 else ""))
    return records


def write_keys_file(path: Path, records: list[KeyRecord]) -> None:
    """Replace the keys file atomically (temporary file + rename), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [_HEADER] + [f"{r.name} {r.digest} {r.created}".rstrip() + "\n" for r in records]
    handle, temporary = tempfile.mkstemp(prefix=".keys-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(lines)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_key(path: Path, name: str, *, key: str | None = None) -> tuple[KeyRecord, str]:
    """Add a key named ``name`` to the keys file (created if missing); returns the record and the key.

    Raises:
        InvalidInput: the name is malformed or already used.
    """
    check_key_name(name)
    records = read_keys_file(path) if path.exists() else []
    if any(r.name == name for r in records):
        raise InvalidInput(
            f"a key named {name!r} exists already in {path}; remove it first or pick another name"
        )
    key = key or generate_key()
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = KeyRecord(name, hash_key(key), created)
    write_keys_file(path, [*records, record])
    return record, key


def remove_key(path: Path, name: str) -> bool:
    """Remove the key named ``name``; False when there was none."""
    records = read_keys_file(path)
    kept = [r for r in records if r.name != name]
    if len(kept) == len(records):
        return False
    write_keys_file(path, kept)
    return True


def credentials_from_header(authorization: str | None) -> str | None:
    """The key in an ``Authorization`` header: ``Bearer KEY``, or HTTP Basic with the key as password."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def is_bearer(authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries a Bearer credential (an API key or a JWT).

    A browser sends one only from a page that set the header itself, which a page on another site
    can do only after a CORS preflight (``access.py``'s cross-site check relies on it).
    """
    scheme, _, value = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and bool(value.strip())


class KeyRing:
    """The keys a server accepts: command-line keys plus the keys file, re-read when it changes."""

    def __init__(self, *, plain_keys: tuple[str, ...] = (), keys_file: Path | None = None) -> None:
        self._fixed = [KeyRecord(f"cli-{i + 1}", hash_key(k)) for i, k in enumerate(plain_keys)]
        self._file = keys_file
        self._file_records: list[KeyRecord] = []
        self._file_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        if keys_file is not None:
            self._reload(force=True)

    @property
    def enabled(self) -> bool:
        return bool(self._fixed) or self._file is not None

    def _reload(self, *, force: bool = False) -> None:
        assert self._file is not None  # only called when a keys file is configured
        try:
            stat = self._file.stat()
        except OSError:
            if force:
                read_keys_file(self._file)  # raises the readable ConfigError
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._file_stamp and not force:
            return
        with self._lock:
            self._file_records = read_keys_file(self._file)
            self._file_stamp = stamp

    def authenticate(self, presented: str | None) -> str | None:
        """The name of the key presented, or None. Every stored digest is compared, in constant time."""
        if presented is None:
            return None
        if self._file is not None:
            try:
                self._reload()
            except ConfigError as exc:  # a half-edited file: keep the keys we had
                logger.warning("keeping the previous API keys: %s", exc)
        digest = hash_key(presented).encode("ascii")
        match: str | None = None
        for record in [*self._fixed, *self._file_records]:
            if hmac.compare_digest(digest, record.digest.encode("ascii")) and match is None:
                match = record.name
        return match
