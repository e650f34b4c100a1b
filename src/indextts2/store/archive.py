"""``models import`` and ``models export``: how a model reaches a machine without network.

``export`` writes one tar (optionally gzipped) in the official checkpoints layout under a top-level
directory, with ``indextts2-manifest.json`` beside the files: the commits and the SHA-256 of every
file, checked again on import. ``import`` takes such an archive, any tar of a checkpoints directory,
or a plain directory. Archive members are streamed straight into the store, never extracted: a member
is only ever written to a temporary file of the store and then renamed to its hash, so a path with
``..``, an absolute path or a link pointing elsewhere cannot place anything outside the cache (and an
archive holding one is refused as a whole, before anything is written).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import posixpath
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from indextts2.errors import InvalidInput, ModelFilesMissing, ModelNotFound, StoreError
from indextts2.store.download import files_of
from indextts2.store.files import LAYOUT_HINT, ModelFiles, missing_from_layout
from indextts2.store.layout import (
    CommitRecord,
    FileDigest,
    FileRecord,
    Store,
    disk_error,
    hash_file,
    utc_now,
)
from indextts2.store.manifest import (
    DEFAULT_MODEL_ID,
    INDEXTTS_2,
    Component,
    ModelSpec,
    detect_spec,
    get_model_spec,
    validate_layout_path,
)
from indextts2.store.progress import NullProgress, Progress, ProgressItem
from indextts2.store.resolve import model_states, open_store

__all__ = ["ARCHIVE_MANIFEST", "export_model", "import_model"]

logger = logging.getLogger(__name__)

ARCHIVE_MANIFEST = "indextts2-manifest.json"
ARCHIVE_FORMAT = 1
COPY_CHUNK = 4 * 2**20
# How many links in a row an archive may chain (a -> b -> c) before we call it a loop.
MAX_LINK_DEPTH = 8
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


# ---- reading a source (directory or tar) ---------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """A regular file of the source, by its path in the official layout."""

    size: int
    open: Callable[[], IO[bytes]]
    path_on_disk: Path | None = None


def _directory_entries(root: Path) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for filename in filenames:
            full = Path(dirpath) / filename
            if not full.is_file():
                continue
            relative = full.relative_to(root).as_posix()
            entries[relative] = _Entry(full.stat().st_size, _opener(full), full)
    return entries


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def _safe_member_name(archive: Path, name: str) -> str:
    cleaned = name[2:] if name.startswith("./") else name
    cleaned = cleaned.rstrip("/")
    try:
        return validate_layout_path(cleaned)
    except InvalidInput as exc:
        raise StoreError(f"{archive} holds an unsafe path {name!r}; refusing to import it ({exc})") from exc


def _tar_entries(archive: Path, tar: tarfile.TarFile) -> dict[str, _Entry]:
    """Every regular file of the archive (links followed inside it), after checking every member."""
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if member.isdir() and member.name.rstrip("/") in ("", "."):
            continue  # the archive's own root, as `tar -C dir -cf x.tar .` writes it
        name = _safe_member_name(archive, member.name)
        if member.isdir():
            continue
        if not (member.isfile() or member.issym() or member.islnk()):
            raise StoreError(f"{archive} holds {name!r}, which is not a regular file; refusing to import it")
        members[name] = member

    def target_of(name: str, depth: int = 0) -> tarfile.TarInfo:
        member = members[name]
        if member.isfile():
            return member
        if depth >= MAX_LINK_DEPTH:
            raise StoreError(f"{archive}: the link {name!r} is part of a loop; refusing to import it")
        if member.issym():
            if member.linkname.startswith("/"):
                raise StoreError(
                    f"{archive}: {name!r} links to the absolute path {member.linkname!r}; "
                    "refusing to import it"
                )
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        else:
            joined = member.linkname
        if joined.startswith("../") or joined == ".." or joined.startswith("/"):
            raise StoreError(
                f"{archive}: {name!r} links outside the archive ({member.linkname!r}); refusing to import it"
            )
        target = _safe_member_name(archive, joined)
        if target not in members:
            raise StoreError(
                f"{archive}: {name!r} links to {member.linkname!r}, which the archive does not hold"
            )
        return target_of(target, depth + 1)

    entries: dict[str, _Entry] = {}
    for name in members:
        regular = target_of(name)

        def opener(member: tarfile.TarInfo = regular) -> IO[bytes]:
            handle = tar.extractfile(member)
            if handle is None:  # pragma: no cover - regular members always have data
                raise StoreError(f"{archive}: cannot read {member.name!r}")
            return handle

        entries[name] = _Entry(regular.size, opener)
    return entries


def _layout_root(source: Path, entries: dict[str, _Entry], spec: ModelSpec) -> str:
    """The directory of the source that holds the official layout ('' or 'name/'), found by config.yaml."""
    anchor = spec.main.files[0].local_path  # config.yaml
    second = spec.main.files[1].local_path  # gpt.pth
    roots = sorted(
        name[: -len(anchor)]
        for name in entries
        if (name == anchor or name.endswith("/" + anchor)) and name[: -len(anchor)] + second in entries
    )
    if not roots:
        raise ModelNotFound(f"{source} holds no model in the official checkpoints layout ({LAYOUT_HINT})")
    if len(roots) > 1:
        raise StoreError(
            f"{source} holds more than one model ({', '.join(r or './' for r in roots)}); import one"
        )
    return roots[0]


@contextmanager
def _open_source(source: Path) -> Iterator[dict[str, _Entry]]:
    if source.is_dir():
        yield _directory_entries(source)
        return
    if not source.exists():
        raise ModelNotFound(f"{source} does not exist")
    try:
        tar = tarfile.open(source, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError) as exc:
        raise StoreError(f"{source} is neither a directory nor a readable tar archive ({exc})") from exc
    with tar:
        try:
            yield _tar_entries(source, tar)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            raise StoreError(f"{source} is a damaged archive ({exc})") from exc


# ---- copying into the store ----------------------------------------------------------------------


def _write_chunk(handle: IO[bytes], chunk: bytes) -> None:
    handle.write(chunk)


def _copy_in(store: Store, entry: _Entry, *, link: bool, on_bytes: Callable[[int], None]) -> FileDigest:
    """Copy (or hard-link) one source file into blobs/ and return its digest."""
    if link and entry.path_on_disk is not None:
        digest = hash_file(entry.path_on_disk, on_bytes=on_bytes)
        target = store.blob_path(digest.sha256)
        if target.exists():
            return digest
        temp = store.new_temp_path()
        try:
            os.link(entry.path_on_disk, temp)
        except OSError:
            logger.info(
                "cannot hard-link %s into the store (another filesystem?); copying", entry.path_on_disk
            )
        else:
            store.put_blob(temp, digest)
            return digest
    temp = store.new_temp_path()
    sha256 = hashlib.sha256()
    size = 0
    try:
        with entry.open() as source, temp.open("wb") as handle:
            while chunk := source.read(COPY_CHUNK):
                _write_chunk(handle, chunk)
                sha256.update(chunk)
                size += len(chunk)
                on_bytes(len(chunk))
        digest = FileDigest(size=size, sha256=sha256.hexdigest())
        store.put_blob(temp, digest)
        return digest
    finally:
        temp.unlink(missing_ok=True)


def _read_manifest(source: Path, entries: dict[str, _Entry], root: str) -> dict[str, Any] | None:
    entry = entries.get(root + ARCHIVE_MANIFEST)
    if entry is None:
        return None
    try:
        with entry.open() as handle:
            data = json.loads(handle.read())
        if not isinstance(data, dict) or not isinstance(data.get("components"), list):
            raise ValueError("no component list")
        return data
    except (ValueError, OSError, tarfile.TarError) as exc:
        raise StoreError(f"{source}: {ARCHIVE_MANIFEST} is not readable ({exc})") from exc


def _manifest_records(
    source: Path, data: dict[str, Any], spec: ModelSpec
) -> dict[str, tuple[str, CommitRecord]]:
    """Component name -> (revision, record) from an export manifest, checked against the spec."""
    found: dict[str, tuple[str, CommitRecord]] = {}
    by_name = {c.name: c for c in spec.components}
    for item in data["components"]:
        if not isinstance(item, dict) or item.get("name") not in by_name:
            raise StoreError(f"{source}: {ARCHIVE_MANIFEST} names an unknown component ({item!r:.80})")
        component = by_name[item["name"]]
        record = CommitRecord.from_json(item, where=f"{source}: {ARCHIVE_MANIFEST}")
        if record.repo_id != component.repo_id:
            raise StoreError(f"{source}: {ARCHIVE_MANIFEST} gives {record.repo_id} for {component.repo_id}")
        found[component.name] = (str(item.get("revision") or component.revision), record)
    return found


def import_model(
    source: str | Path,
    *,
    model_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    link: bool = False,
    progress: Progress | None = None,
) -> ModelFiles:
    """Copy a model from a directory or a .tar/.tar.gz in the official layout into the store.

    Every file is hashed on the way in (and checked against the archive's manifest when it has one,
    as ``models export`` writes). The store's records change only once every file is in.

    Args:
        source: a checkpoints directory, or a tar archive of one (gzip, bzip2 or xz compressed or not).
        model_id: the model it must be (default: the model its files are, see
            :func:`~indextts2.store.manifest.detect_spec`).
        revision: the name to file it under for the model's own repo (default: the manifest's, or ``main``).
        link: hard-link files from a directory instead of copying them (same filesystem only).

    Raises:
        ModelNotFound: the source does not exist or holds no model.
        ModelFilesMissing: required files are absent (all named).
        StoreError: an unsafe or damaged archive, a file that does not match its manifest, a full disk.
    """
    asked = get_model_spec(model_id) if model_id is not None else None
    store = open_store(cache_dir)
    progress = progress or NullProgress()
    source_path = Path(source).expanduser().resolve()
    with _open_source(source_path) as entries:
        root = _layout_root(source_path, entries, asked or INDEXTTS_2)
        layout = {name[len(root) :]: entry for name, entry in entries.items() if name.startswith(root)}
        found = detect_spec(lambda rel: rel in layout)
        if asked is not None and found is not None and found is not asked:
            raise InvalidInput(
                f"{source_path} holds an {found.family} model ({found.model_id}), not {asked.model_id}: "
                "import it without naming the model, or as the model its files are"
            )
        spec = asked or found or INDEXTTS_2
        missing = missing_from_layout(lambda rel: rel in layout, spec)
        if missing:
            raise ModelFilesMissing(str(source_path), missing, hint=spec.layout_hint)
        manifest = _read_manifest(source_path, entries, root)
        expected = _manifest_records(source_path, manifest, spec) if manifest else {}

        wanted: list[tuple[Component, str, str]] = []  # (component, repo path, layout path)
        for component in spec.components:
            for local in sorted(layout):
                repo_path = component.repo_path(local)
                if repo_path is not None and component.local_path(repo_path) == local:
                    wanted.append((component, repo_path, local))
        items = [ProgressItem(local, layout[local].size) for _, _, local in wanted]
        with store.lock():
            progress.start("import", items)
            digests: dict[str, FileDigest] = {}
            for component, repo_path, local in wanted:
                try:
                    digest = _copy_in(
                        store, layout[local], link=link, on_bytes=functools.partial(progress.advance, local)
                    )
                except OSError as exc:
                    raise disk_error(exc, f"importing {local} into {store.base}") from exc
                known = expected.get(component.name)
                recorded = known[1].file(repo_path) if known else None
                if known and (
                    recorded is None or recorded.sha256 != digest.sha256 or recorded.size != digest.size
                ):
                    raise StoreError(
                        f"{source_path}: {local} does not match the archive's manifest (a damaged copy?); "
                        "nothing was recorded"
                    )
                digests[local] = digest
                progress.finish(local)

            states_revisions = _record_import(store, spec, source_path, wanted, digests, expected, revision)
        states = model_states(spec, store, revision=states_revisions)
        return files_of(store, spec, states, model_id=spec.model_id)


def _record_import(
    store: Store,
    spec: ModelSpec,
    source: Path,
    wanted: list[tuple[Component, str, str]],
    digests: dict[str, FileDigest],
    expected: dict[str, tuple[str, CommitRecord]],
    revision: str | None,
) -> str:
    """Write the records and refs of an import (all blobs are in); return the main revision's name."""
    main_revision = spec.main.revision
    for component in spec.components:
        files = tuple(
            FileRecord(repo_path, digests[local].size, digests[local].sha256)
            for c, repo_path, local in wanted
            if c is component
        )
        if component.name in expected:
            ref, known = expected[component.name]
            commit, created = known.commit, known.created
            files = tuple(
                FileRecord(f.path, f.size, f.sha256, (known.file(f.path) or f).git_oid) for f in files
            )
        else:
            ref = component.revision
            fingerprint = json.dumps([(f.path, f.sha256) for f in files]).encode()
            commit, created = f"imported-{hashlib.sha256(fingerprint).hexdigest()[:16]}", utc_now()
        if component is spec.main and revision:
            ref = revision
        if component is spec.main:
            main_revision = ref
        store.write_record(CommitRecord(component.repo_id, commit, f"import:{source}", created, files))
        if ref != commit:
            store.write_ref(component.repo_id, ref, commit)
    return main_revision


# ---- export --------------------------------------------------------------------------------------


class _HashingReader(io.RawIOBase):
    """Reads a file for tarfile while hashing it."""

    def __init__(self, handle: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        self._handle = handle
        self._on_bytes = on_bytes
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sha256.update(data)
        self._on_bytes(len(data))
        return data


def export_model(
    destination: str | Path,
    *,
    model_id: str = DEFAULT_MODEL_ID,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the stored model to a tar (``.tar``, ``.tar.gz`` or ``.tgz``) for ``models import`` elsewhere.

    Every file is checked against its recorded SHA-256 while it is written; the archive appears
    under its name only when complete.

    Raises:
        InvalidInput: the destination's suffix is not a tar one.
        ModelFilesMissing: the store lacks files of the model (all named).
        StoreError: the destination exists (without ``overwrite``), a stored file is damaged, a full disk.
    """
    spec = get_model_spec(model_id)
    store = open_store(cache_dir)
    progress = progress or NullProgress()
    target = Path(destination).expanduser().resolve()
    name = target.name.lower()
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise InvalidInput(f"{target}: the archive name must end with .tar, .tar.gz or .tgz")
    if target.exists() and not overwrite:
        raise StoreError(f"{target} already exists; remove it or choose another name")
    states = model_states(spec, store, revision=revision)
    missing = [f"{s.component.repo_id}/{p}" for s in states for p in s.required_missing()]
    if missing:
        raise ModelFilesMissing(spec.model_id, missing, hint="run `indextts2 models download` first")

    top = spec.model_id.split("/")[-1]
    plan: list[tuple[str, FileRecord]] = []
    manifest_components = []
    for state in states:
        assert state.record is not None  # complete states have records
        present = tuple(f for f in state.record.files if store.has_blob(f))
        for file in present:
            local = state.component.local_path(file.path)
            if local is not None:
                plan.append((local, file))
        entry = CommitRecord(
            state.record.repo_id, state.record.commit, state.record.source, state.record.created, present
        ).to_json()
        entry.update(name=state.component.name, revision=state.revision)
        manifest_components.append(entry)
    manifest = json.dumps(
        {
            "format": ARCHIVE_FORMAT,
            "model": spec.model_id,
            "created": utc_now(),
            "components": manifest_components,
        },
        indent=1,
    ).encode()

    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    progress.start("export", [ProgressItem(local, file.size) for local, file in plan])
    try:
        gzip = name.endswith((".tar.gz", ".tgz"))
        mode = "w:gz" if gzip else "w"
        with tarfile.open(partial, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            info = tarfile.TarInfo(f"{top}/{ARCHIVE_MANIFEST}")
            info.size, info.mode, info.mtime = len(manifest), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(manifest))
            for local, file in plan:
                assert file.sha256 is not None  # has_blob() checked it
                info = tarfile.TarInfo(f"{top}/{local}")
                info.size, info.mode, info.mtime = file.size, 0o644, int(time.time())
                with store.blob_path(file.sha256).open("rb") as handle:
                    reader = _HashingReader(handle, functools.partial(progress.advance, local))
                    tar.addfile(info, reader)
                if reader.sha256.hexdigest() != file.sha256:
                    raise StoreError(
                        f"{local} in the store is damaged (its SHA-256 no longer matches); nothing was "
                        "exported: run `indextts2 models verify`, then download or import it again"
                    )
                progress.finish(local)
        os.replace(partial, target)
    except OSError as exc:
        raise disk_error(exc, f"writing {target}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target
