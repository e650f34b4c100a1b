"""Saved voices: reference clips stored on disk under ``--voices-dir``, their conditioning in memory.

Layout, one directory per voice, named by the voice id (the Synthesizer's content hash of the decoded
reference, 64 hex digits, so the same recording always gets the same id)::

    voices/
      <id>/meta.json          what the API shows: id, name, aliases, created, duration, file name, size
      <id>/reference.<ext>    the uploaded bytes, as they came

Built-in voices (the sample voice shipped with the package, ``serve --sample-voice``) are listed
and used like saved ones, read from the package, never written or deleted.

A voice is written into a temporary directory beside the others and renamed into place, so a crash
never leaves half a voice, and a restart finds every voice that was acknowledged. A name given when
the same clip is uploaded again becomes another name of the stored voice (``aliases``); its
``meta.json`` is replaced atomically (a temporary file renamed over it). Ids and names are
validated before any path is built from them: no request can name a file outside the store.
The conditioning (the encoded reference) is not stored: it depends on the model, and is computed
again on first use after a restart, then kept in a small in-memory LRU cache per (model, voice). A
voice records the model it was saved with (``model_id``); a server with several models encodes its
stored clip again for another one when a request asks for that model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from indextts2.errors import InvalidInput, StoreError, VoiceNotFound
from indextts2.server.errors import Conflict

__all__ = ["VoiceRecord", "VoiceStore", "is_voice_id"]

logger = logging.getLogger(__name__)

_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".oga", ".webm", ".m4a"}
_META = "meta.json"
_META_TEMPORARY = ".meta-"  # prefix of a meta.json being replaced
MAX_NAMES = 16
"""Names a voice may have (its name and its aliases)."""


def is_voice_id(text: str) -> bool:
    """Whether ``text`` has the form of a voice id (64 lowercase hex digits)."""
    return bool(_ID_PATTERN.match(text))


def check_voice_name(name: str) -> str:
    if not _NAME_PATTERN.match(name) or is_voice_id(name):
        raise InvalidInput(
            f"voice name {name!r} is not allowed; use 1-64 letters, digits, spaces, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class VoiceRecord:
    """A saved voice as the API shows it."""

    id: str
    name: str | None
    created: str
    duration: float
    model_id: str
    filename: str
    size: int
    consent: bool = True
    aliases: tuple[str, ...] = ()
    """More names of the voice: given when the same clip was uploaded again under another name."""
    builtin: bool = False
    """Shipped with indextts2 (the sample voice): always there, cannot be deleted."""

    @property
    def names(self) -> tuple[str, ...]:
        return ((self.name,) if self.name else ()) + self.aliases

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data


class VoiceStore:
    """The saved voices of one server. Thread-safe; call its blocking methods off the event loop.

    Several servers may share the directory (pods of a Deployment, Ray ingress replicas): a voice
    another one saved is found on first use, since a lookup that misses reads the directory again
    (at most once per ``rescan_seconds``), and so does a listing.
    """

    def __init__(self, root: Path, *, cache_size: int = 64, rescan_seconds: float = 2.0) -> None:
        self.root = root
        self._rescan_seconds = rescan_seconds
        self._scanned_at = -math.inf
        self._records: dict[str, VoiceRecord] = {}
        self._builtin: dict[str, tuple[VoiceRecord, Path]] = {}  # id -> record, reference file
        self._lock = threading.Lock()
        self._conditioning: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (model, voice id)
        self._cache_size = cache_size

    # ---- built-in voices

    def add_builtin(self, name: str, reference: Path, *, duration: float) -> VoiceRecord:
        """Offer a reference clip of the package as a voice named ``name`` (listed first)."""
        data = reference.read_bytes()
        record = VoiceRecord(
            id=hashlib.sha256(data).hexdigest(),
            name=check_voice_name(name),
            created=datetime.fromtimestamp(reference.stat().st_mtime, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            duration=round(float(duration), 3),
            model_id="",
            filename=reference.name,
            size=len(data),
            builtin=True,
        )
        with self._lock:
            self._builtin[record.id] = (record, reference)
        return record

    # ---- disk

    def load(self, *, rescan: bool = False) -> None:
        """Create the directory if needed and read every saved voice (broken entries are skipped).

        ``rescan``: a later read, for voices other servers saved; it leaves their half-written
        entries alone (at start, those are what a crash left behind, and go).
        """
        self._scanned_at = time.monotonic()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the voices directory {self.root}: {exc.strerror}") from exc
        records: dict[str, VoiceRecord] = {}
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".tmp-"):
                if not rescan:
                    shutil.rmtree(entry, ignore_errors=True)  # left by a crash during a write
                continue
            if not (entry.is_dir() and is_voice_id(entry.name)):
                continue
            for stale in () if rescan else entry.glob(_META_TEMPORARY + "*"):
                stale.unlink(missing_ok=True)  # left by a crash while a name was added
            try:
                meta = json.loads((entry / _META).read_text(encoding="utf-8"))
                record = VoiceRecord(**{**meta, "aliases": tuple(meta.get("aliases", ()))})
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("skipping voice %s: unreadable %s (%s)", entry.name, _META, exc)
                continue
            if record.id != entry.name:
                logger.warning("skipping voice %s: its %s names id %s", entry.name, _META, record.id)
                continue
            records[record.id] = record
        with self._lock:
            self._records = records
        level = logging.DEBUG if rescan else logging.INFO
        logger.log(level, "voice store %s: %d voice(s)", self.root, len(records))

    def _rescan(self) -> bool:
        """Read the directory again unless that was done within ``rescan_seconds``."""
        if time.monotonic() - self._scanned_at < self._rescan_seconds:
            return False
        self.load(rescan=True)
        return True

    def save(
        self,
        *,
        voice_id: str,
        reference: bytes,
        filename: str,
        name: str | None,
        duration: float,
        model_id: str,
    ) -> tuple[VoiceRecord, bool]:
        """Store a voice; returns (record, created).

        The same id stored again returns the stored record; a ``name`` it does not have yet becomes
        one of its names (its name, or an alias when it has one), so that the name works everywhere.

        Raises:
            Conflict: ``name`` belongs to another voice, or the voice has :data:`MAX_NAMES` names.
            StoreError: the disk refused (full, read-only...).
        """
        if not is_voice_id(voice_id):
            raise StoreError(f"the synthesizer produced a malformed voice id {voice_id!r}")
        if name is not None:
            check_voice_name(name)
        with self._lock:
            holder = self._by_name(name) if name else None
            if holder is not None and holder.builtin:
                raise Conflict(f"the voice name {name!r} belongs to a built-in voice; pick another name")
            if holder is not None and holder.id != voice_id:
                raise Conflict(
                    f"the voice name {name!r} is taken by voice {holder.id}; delete that voice or pick "
                    "another name"
                )
            shipped = self._builtin.get(voice_id)
            if shipped is not None:  # the sample clip uploaded again: it stays the built-in voice
                if name is not None and name not in shipped[0].names:
                    raise Conflict(
                        f"this clip is the built-in voice {shipped[0].name!r}, which cannot take another "
                        "name; use that name"
                    )
                return shipped[0], False
            existing = self._records.get(voice_id)
            if existing is not None:
                if name is not None and holder is None:
                    existing = self._add_name(existing, name)
                return existing, False
            suffix = Path(filename).suffix.lower()
            record = VoiceRecord(
                id=voice_id,
                name=name,
                created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                duration=round(float(duration), 3),
                model_id=model_id,
                filename=Path(filename).name[:200] or "reference",
                size=len(reference),
            )
            reference_name = "reference" + (suffix if suffix in _AUDIO_SUFFIXES else ".bin")
            self._write(record, reference_name, reference)
            self._records[voice_id] = record
        return record, True

    def _write(self, record: VoiceRecord, reference_name: str, reference: bytes) -> None:
        try:
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
            try:
                for file_name, data in (
                    (reference_name, reference),
                    (_META, json.dumps(record.to_json(), indent=2).encode("utf-8")),
                ):
                    with open(staging / file_name, "wb") as stream:
                        stream.write(data)
                        stream.flush()
                        os.fsync(stream.fileno())
                os.rename(staging, self.root / record.id)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        except OSError as exc:
            raise StoreError(f"cannot save voice {record.id} in {self.root}: {exc.strerror}") from exc

    def _add_name(self, record: VoiceRecord, name: str) -> VoiceRecord:
        """Give a stored voice one more name (held lock); its meta.json is replaced atomically."""
        if len(record.names) >= MAX_NAMES:
            raise Conflict(
                f"voice {record.id} has {MAX_NAMES} names already ({', '.join(record.names)}); "
                "use one of them"
            )
        if record.name is None:
            named = dataclasses.replace(record, name=name)
        else:
            named = dataclasses.replace(record, aliases=(*record.aliases, name))
        directory = self.root / record.id
        try:
            handle, temporary = tempfile.mkstemp(prefix=_META_TEMPORARY, dir=directory)
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(json.dumps(named.to_json(), indent=2).encode("utf-8"))
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, directory / _META)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreError(f"cannot name voice {record.id} {name!r}: {exc.strerror}") from exc
        self._records[record.id] = named
        logger.info("voice %s is also called %r now", record.id, name)
        return named

    def delete(self, voice_id: str) -> VoiceRecord:
        """Remove a saved voice; returns what was removed.

        Raises:
            VoiceNotFound: there is no such voice.
        """
        record = self.get(voice_id)
        if record.builtin:
            raise Conflict(
                f"the voice {record.name!r} is built in and cannot be deleted; start the server with "
                "--no-sample-voice to leave it out"
            )
        with self._lock:
            self._records.pop(record.id, None)
            for key in [key for key in self._conditioning if key[1] == record.id]:
                del self._conditioning[key]
            graveyard = self.root / f".tmp-deleted-{record.id}"
            try:
                os.rename(self.root / record.id, graveyard)  # atomic: gone for good, or still whole
            except OSError as exc:
                self._records[record.id] = record
                raise StoreError(f"cannot delete voice {record.id}: {exc.strerror}") from exc
        shutil.rmtree(graveyard, ignore_errors=True)
        return record

    def reference_bytes(self, voice_id: str) -> bytes:
        """The stored reference clip of a voice."""
        record = self.get(voice_id)
        if record.builtin:
            return self._builtin[record.id][1].read_bytes()
        directory = self.root / record.id
        for candidate in sorted(directory.glob("reference.*")):
            return candidate.read_bytes()
        raise VoiceNotFound(f"voice {record.id} has lost its reference clip; delete it and upload it again")

    # ---- lookups

    def records(self) -> list[VoiceRecord]:
        """The built-in voices, then the saved ones, oldest first."""
        self._rescan()
        with self._lock:
            builtin = [record for record, _ in self._builtin.values()]
            return builtin + sorted(self._records.values(), key=lambda r: (r.created, r.id))

    def _by_name(self, name: str) -> VoiceRecord | None:
        builtin = (record for record, _ in self._builtin.values())
        return next((r for r in (*builtin, *self._records.values()) if name in r.names), None)

    def _by_id(self, voice_id: str) -> VoiceRecord | None:
        found = self._builtin.get(voice_id)
        return found[0] if found is not None else self._records.get(voice_id)

    def get(self, id_or_name: str) -> VoiceRecord:
        """The voice with this id or name.

        Raises:
            InvalidInput: the text is neither a voice id nor a possible name.
            VoiceNotFound: no saved voice has it.
        """
        key = id_or_name.strip()
        if not is_voice_id(key) and not _NAME_PATTERN.match(key):
            raise InvalidInput(
                f"{id_or_name[:80]!r} is not a voice id (64 hex digits) or a voice name; "
                "list the saved voices with GET /v1/voices"
            )
        with self._lock:
            record = self._by_id(key) if is_voice_id(key) else self._by_name(key)
        if record is None and self._rescan():  # saved by another server on the same directory?
            with self._lock:
                record = self._by_id(key) if is_voice_id(key) else self._by_name(key)
        if record is None:
            raise VoiceNotFound(
                f"there is no saved voice {key!r}; list them with GET /v1/voices, or upload a reference "
                "with POST /v1/voices"
            )
        return record

    # ---- conditioning cache (the Synthesizers' Voice objects, per model)

    def cached_conditioning(self, voice_id: str, *, model: str = "") -> Any | None:
        """A voice's conditioning for ``model`` (its id), if it is in memory."""
        with self._lock:
            voice = self._conditioning.get((model, voice_id))
            if voice is not None:
                self._conditioning.move_to_end((model, voice_id))
            return voice

    def remember_conditioning(self, voice_id: str, voice: Any, *, model: str = "") -> None:
        with self._lock:
            if voice_id not in self._records and voice_id not in self._builtin:
                return
            self._conditioning[(model, voice_id)] = voice
            self._conditioning.move_to_end((model, voice_id))
            while len(self._conditioning) > self._cache_size:
                self._conditioning.popitem(last=False)
