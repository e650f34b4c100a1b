"""The store on disk: content-addressed blobs, per-repo commit records and refs, model views.

Layout under the cache root (``INDEXTTS2_HOME``, ``--cache-dir`` or the platformdirs user cache)::

    models/
      blobs/<sha256>                        every file's bytes once, named by their SHA-256
      partial/<key>.incomplete              an interrupted download, resumed by the next one
      repos/<owner>--<name>/refs/<revision> the commit a branch or tag resolved to (for offline use)
      repos/<owner>--<name>/commits/<commit>.json
                                            the record of one commit: every file's path, size and
                                            SHA-256 (from the hub's LFS metadata, or computed), so
                                            ``verify`` works offline
      views/<owner>--<name>/<view-id>/      one model in the official checkpoints layout: symlinks
                                            into blobs/ (what ``models path`` prints)
      licenses/<owner>--<name>.json         the weights' licence was accepted, when and how
      .lock                                 held by whoever changes the store (download, import, rm)

A blob appears only under its final name, by an atomic rename of a fully written and hashed file;
records and refs are replaced atomically too. Readers (``list``, ``verify``, offline resolution)
need no lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from indextts2.errors import StoreError
from indextts2.store.manifest import Component, ModelSpec, validate_layout_path

__all__ = ["CommitRecord", "ComponentState", "FileDigest", "FileRecord", "Store", "hash_file", "is_commit_id"]

logger = logging.getLogger(__name__)

STORE_SUBDIR = "models"
RECORD_FORMAT = 1
HASH_CHUNK = 8 * 2**20

# Hub commits are 40 hex digits; imported models without hub metadata get "imported-<hex>".
_COMMIT_ID = re.compile(r"^(?:[0-9a-f]{40}|imported-[0-9a-f]{16,64})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_commit_id(value: str) -> bool:
    """Whether ``value`` is a commit id the store can name a record by."""
    return bool(_COMMIT_ID.match(value))


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class FileDigest:
    """Size and hashes of a file's bytes."""

    size: int
    sha256: str
    git_oid: str | None = None
    """The git blob id (sha1 of ``blob <size>\\0`` + bytes), when asked for."""


def hash_file(
    path: Path, *, git_oid: bool = False, on_bytes: Callable[[int], None] | None = None
) -> FileDigest:
    """SHA-256 (and optionally the git blob id) of a file, reading it once."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {size}\0".encode()) if git_oid else None
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return FileDigest(size=size, sha256=sha256.hexdigest(), git_oid=sha1.hexdigest() if sha1 else None)


@dataclass(frozen=True)
class FileRecord:
    """One file of a commit as the store knows it."""

    path: str
    """The path inside the repo."""
    size: int
    sha256: str | None
    """None until the file has been downloaded once (the hub gives SHA-256 for LFS files only)."""
    git_oid: str | None = None
    """The hub's git blob id of a non-LFS file, checked when it is downloaded."""


@dataclass(frozen=True)
class CommitRecord:
    """The files of one repo at one commit, and where they came from."""

    repo_id: str
    commit: str
    source: str
    """The hub endpoint it was downloaded from, or ``import:<path>``."""
    created: str
    files: tuple[FileRecord, ...]

    def file(self, path: str) -> FileRecord | None:
        for record in self.files:
            if record.path == path:
                return record
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "repo_id": self.repo_id,
            "commit": self.commit,
            "source": self.source,
            "created": self.created,
            "files": {
                f.path: {"size": f.size, "sha256": f.sha256, "git_oid": f.git_oid}
                for f in sorted(self.files, key=lambda f: f.path)
            },
        }

    @classmethod
    def from_json(cls, data: Any, *, where: str) -> CommitRecord:
        """Parse and validate a record (also used for the manifest of an imported archive).

        Raises:
            StoreError: the data is not a valid record.
        """
        try:
            commit = str(data["commit"])
            if not is_commit_id(commit):
                raise ValueError(f"bad commit id {commit!r}")
            files = []
            for path, entry in dict(data["files"]).items():
                sha = entry.get("sha256")
                if sha is not None and not _SHA256.match(str(sha)):
                    raise ValueError(f"bad sha256 for {path}")
                size = int(entry["size"])
                if size < 0:
                    raise ValueError(f"negative size for {path}")
                oid = entry.get("git_oid")
                files.append(
                    FileRecord(validate_layout_path(str(path)), size, sha, None if oid is None else str(oid))
                )
            return cls(
                repo_id=str(data["repo_id"]),
                commit=commit,
                source=str(data.get("source", "")),
                created=str(data.get("created", "")),
                files=tuple(sorted(files, key=lambda f: f.path)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(
                f"{where} is not a valid store record ({exc}); remove it and download again"
            ) from exc


@dataclass(frozen=True)
class ComponentState:
    """What the store holds of one component at one revision."""

    component: Component
    revision: str
    commit: str | None
    record: CommitRecord | None
    missing: tuple[str, ...]
    """Repo paths of the files the store lacks (required ones, and recorded optional ones)."""
    size: int
    """Bytes of the files it has."""

    @property
    def complete(self) -> bool:
        return self.record is not None and not self.missing

    def required_missing(self) -> tuple[str, ...]:
        """The missing files without those of optional directories (the Qwen emotion model)."""
        optional = tuple(d.repo_prefix for d in self.component.dirs if not d.required)
        return tuple(path for path in self.missing if not path.startswith(optional))

    def missing_names(self) -> list[str]:
        """The missing files as ``owner/name/path``, for messages."""
        return [f"{self.component.repo_id}/{path}" for path in self.missing]


class Store:
    """The model store under one cache root."""

    def __init__(self, cache_root: str | Path) -> None:
        self.cache_root = Path(cache_root).expanduser()
        self.base = self.cache_root / STORE_SUBDIR
        self.blobs_dir = self.base / "blobs"
        self.partial_dir = self.base / "partial"
        self.repos_dir = self.base / "repos"
        self.views_dir = self.base / "views"
        self.licenses_dir = self.base / "licenses"

    # ---- locking -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's write lock (waits, saying so, while another process holds it)."""
        from filelock import FileLock, Timeout

        self._mkdir(self.base)
        file_lock = FileLock(str(self.base / ".lock"))
        try:
            file_lock.acquire(timeout=0)
        except Timeout:
            logger.warning(
                "another indextts2 process is changing the model store %s; waiting for it", self.base
            )
            file_lock.acquire()
        try:
            yield
        finally:
            file_lock.release()

    # ---- blobs ---------------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise StoreError(f"bad sha256 {sha256!r} in the store")
        return self.blobs_dir / sha256

    def has_blob(self, record: FileRecord) -> bool:
        if record.sha256 is None:
            return False
        try:
            return self.blob_path(record.sha256).stat().st_size == record.size
        except OSError:
            return False

    def partial_path(self, key: str) -> Path:
        return self.partial_dir / f"{key}.incomplete"

    def new_temp_path(self) -> Path:
        """A fresh temporary file name inside the store (same filesystem as the blobs)."""
        self._mkdir(self.partial_dir)
        return self.partial_dir / f"tmp-{uuid.uuid4().hex}"

    def put_blob(self, source: Path, digest: FileDigest) -> Path:
        """Move a fully written, hashed file into blobs/ under its SHA-256 (atomic)."""
        self._mkdir(self.blobs_dir)
        target = self.blob_path(digest.sha256)
        if target.exists() and target.stat().st_size == digest.size:
            source.unlink(missing_ok=True)
            return target
        os.replace(source, target)
        return target

    # ---- refs and records ----------------------------------------------------------------------------

    def repo_dir(self, repo_id: str) -> Path:
        return self.repos_dir / repo_id.replace("/", "--")

    def read_ref(self, repo_id: str, revision: str) -> str | None:
        path = self.repo_dir(repo_id) / "refs" / quote(revision, safe="")
        try:
            commit = path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return commit if is_commit_id(commit) else None

    def write_ref(self, repo_id: str, revision: str, commit: str) -> None:
        path = self.repo_dir(repo_id) / "refs" / quote(revision, safe="")
        self.write_atomic(path, commit)

    def refs(self, repo_id: str) -> dict[str, str]:
        """Every ref of a repo: revision name -> commit."""
        directory = self.repo_dir(repo_id) / "refs"
        found: dict[str, str] = {}
        if directory.is_dir():
            for entry in sorted(directory.iterdir()):
                commit = self.read_ref(repo_id, unquote(entry.name))
                if commit is not None:
                    found[unquote(entry.name)] = commit
        return found

    def delete_ref(self, repo_id: str, revision: str) -> None:
        (self.repo_dir(repo_id) / "refs" / quote(revision, safe="")).unlink(missing_ok=True)

    def record_path(self, repo_id: str, commit: str) -> Path:
        if not is_commit_id(commit):
            raise StoreError(f"bad commit id {commit!r}")
        return self.repo_dir(repo_id) / "commits" / f"{commit}.json"

    def read_record(self, repo_id: str, commit: str) -> CommitRecord | None:
        path = self.record_path(repo_id, commit)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(
                f"store record {path} is unreadable ({exc}); remove it and download again"
            ) from exc
        return CommitRecord.from_json(data, where=str(path))

    def write_record(self, record: CommitRecord) -> None:
        path = self.record_path(record.repo_id, record.commit)
        self.write_atomic(path, json.dumps(record.to_json(), indent=1, sort_keys=True))

    def records(self, repo_id: str) -> list[CommitRecord]:
        directory = self.repo_dir(repo_id) / "commits"
        if not directory.is_dir():
            return []
        found = []
        for entry in sorted(directory.glob("*.json")):
            if is_commit_id(entry.stem):
                record = self.read_record(repo_id, entry.stem)
                if record is not None:
                    found.append(record)
        return found

    def delete_record(self, repo_id: str, commit: str) -> None:
        self.record_path(repo_id, commit).unlink(missing_ok=True)

    # ---- state of a component ------------------------------------------------------------------------

    def resolve_commit(self, component: Component, revision: str) -> str | None:
        """The commit a revision names in the store: a recorded commit id, or a ref."""
        if is_commit_id(revision) and self.record_path(component.repo_id, revision).is_file():
            return revision
        return self.read_ref(component.repo_id, revision)

    def component_state(self, component: Component, revision: str) -> ComponentState:
        commit = self.resolve_commit(component, revision)
        record = self.read_record(component.repo_id, commit) if commit else None
        if record is None:
            wanted = [f.repo_path for f in component.files]
            wanted += [d.repo_prefix + d.marker for d in component.dirs if d.required]
            return ComponentState(component, revision, commit, None, tuple(wanted), 0)
        missing: list[str] = []
        size = 0
        for file in record.files:
            if self.has_blob(file):
                size += file.size
            else:
                missing.append(file.path)
        recorded = {f.path for f in record.files}
        missing += [f.repo_path for f in component.files if f.repo_path not in recorded]
        for directory in component.dirs:
            if directory.required and not any(p.startswith(directory.repo_prefix) for p in recorded):
                missing.append(directory.repo_prefix + directory.marker)
        return ComponentState(component, revision, commit, record, tuple(missing), size)

    # ---- views ---------------------------------------------------------------------------------------

    def build_view(self, spec: ModelSpec, states: list[ComponentState]) -> Path:
        """The model in the official layout: a directory of symlinks into blobs/ (hard links if the
        filesystem has no symlinks). Named by a hash of its content, so an existing one is reused."""
        entries: dict[str, str] = {}
        for state in states:
            if state.record is None:
                continue
            component = state.component
            for directory in component.dirs:
                files = [f for f in state.record.files if f.path.startswith(directory.repo_prefix)]
                if any(not self.has_blob(f) for f in files):
                    # An optional directory is all or nothing: a half-downloaded model is no model.
                    state = _without_prefix(state, directory.repo_prefix)
            for file in state.record.files if state.record else ():
                local = component.local_path(file.path)
                if local is not None and file.sha256 is not None and self.has_blob(file):
                    entries[validate_layout_path(local)] = file.sha256
        key = hashlib.sha256(json.dumps(sorted(entries.items())).encode()).hexdigest()[:16]
        main_commit = states[0].commit or "none"
        view = self.views_dir / spec.folder / f"{main_commit[:12]}-{key}"
        if view.is_dir():
            return view
        self._mkdir(view.parent)
        staging = view.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            for local, sha256 in sorted(entries.items()):
                link = staging / local
                link.parent.mkdir(parents=True, exist_ok=True)
                blob = self.blob_path(sha256)
                try:
                    link.symlink_to(os.path.relpath(blob, link.parent))
                except OSError:
                    os.link(blob, link)
            try:
                staging.rename(view)
            except OSError:
                if not view.is_dir():
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return view

    def views(self, spec: ModelSpec) -> list[Path]:
        directory = self.views_dir / spec.folder
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))

    # ---- helpers -------------------------------------------------------------------------------------

    def write_atomic(self, path: Path, text: str) -> None:
        self._mkdir(path.parent)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise disk_error(exc, f"writing {path}") from exc

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(exc, f"creating {path}") from exc


def _without_prefix(state: ComponentState, prefix: str) -> ComponentState:
    assert state.record is not None  # checked by the caller
    record = CommitRecord(
        repo_id=state.record.repo_id,
        commit=state.record.commit,
        source=state.record.source,
        created=state.record.created,
        files=tuple(f for f in state.record.files if not f.path.startswith(prefix)),
    )
    return ComponentState(state.component, state.revision, state.commit, record, state.missing, state.size)


def disk_error(exc: OSError, doing: str) -> StoreError:
    """A StoreError that says plainly what went wrong with the disk."""
    if exc.errno == errno.ENOSPC:
        return StoreError(f"the disk is full ({doing}); free some space or use another --cache-dir")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(f"no permission ({doing}): {exc.strerror}; use a writable --cache-dir")
    return StoreError(f"{doing} failed: {exc.strerror or exc}")
