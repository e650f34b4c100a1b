"""Downloading a model into the store, and the weights' licence that comes first."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from indextts2.errors import LicenseNotAccepted, StoreError
from indextts2.store.files import ModelFiles
from indextts2.store.hub import Hub, RemoteFile, RemoteListing
from indextts2.store.layout import (
    CommitRecord,
    ComponentState,
    FileRecord,
    Store,
    disk_error,
    hash_file,
    utc_now,
)
from indextts2.store.manifest import Component, ModelSpec
from indextts2.store.progress import NullProgress, Progress, ProgressItem

__all__ = ["download", "files_of", "license_accepted", "partial_key", "record_license", "require_license"]

logger = logging.getLogger(__name__)


# ---- licence -----------------------------------------------------------------------------------------


def _license_file(store: Store, spec: ModelSpec) -> Path:
    return store.licenses_dir / f"{spec.folder}.json"


def license_accepted(store: Store, spec: ModelSpec) -> bool:
    """Whether the model's weights licence was accepted in this store before."""
    return _license_file(store, spec).is_file()


def record_license(store: Store, spec: ModelSpec, *, accepted_by: str) -> None:
    """Remember that the licence was accepted (and how: a flag, the environment, a prompt)."""
    text = json.dumps(
        {
            "model": spec.model_id,
            "license": spec.license_name,
            "url": spec.license_url,
            "accepted": utc_now(),
            "accepted_by": accepted_by,
        },
        indent=1,
    )
    store.write_atomic(_license_file(store, spec), text)


def require_license(store: Store, spec: ModelSpec, *, accept: bool, accepted_by: str = "argument") -> None:
    """Pass when the licence is (or is now) accepted.

    Raises:
        LicenseNotAccepted: it was never accepted and ``accept`` is false; the message says where the
            licence is and how to accept it.
    """
    if license_accepted(store, spec):
        return
    if accept:
        record_license(store, spec, accepted_by=accepted_by)
        logger.info("accepted the %s for %s", spec.license_name, spec.model_id)
        return
    raise LicenseNotAccepted(
        f"the {spec.model_id} weights come under the {spec.license_name} ({spec.license_url}); read it, "
        "then accept it with --accept-license or INDEXTTS2_ACCEPT_LICENSE=1 (accept_license=True in "
        "Python; asked once: the answer is "
        f"kept in {store.base})"
    )


# ---- download ----------------------------------------------------------------------------------------


def _wanted(component: Component, listing: RemoteListing) -> list[RemoteFile]:
    """The files of the listing the model needs; a required file the hub lacks is an error."""
    wanted: list[RemoteFile] = []
    absent: list[str] = []
    for spec in component.files:
        remote = listing.files.get(spec.repo_path)
        if remote is None:
            absent.append(spec.repo_path)
        else:
            wanted.append(remote)
    for directory in component.dirs:
        inside = [f for path, f in sorted(listing.files.items()) if path.startswith(directory.repo_prefix)]
        if directory.required and not inside:
            absent.append(directory.repo_prefix)
        wanted.extend(inside)
    if absent:
        raise StoreError(
            f"{component.repo_id} at {listing.revision} (commit {listing.commit[:12]}) has no "
            f"{', '.join(absent)}; is the revision right?"
        )
    return wanted


def _record_for(store: Store, component: Component, listing: RemoteListing, endpoint: str) -> CommitRecord:
    """The record of a listed commit, keeping the SHA-256 of files the store already has."""
    known = store.read_record(component.repo_id, listing.commit)
    files = []
    for remote in _wanted(component, listing):
        earlier = known.file(remote.path) if known else None
        sha256 = remote.sha256 or (earlier.sha256 if earlier and earlier.size == remote.size else None)
        files.append(FileRecord(remote.path, remote.size, sha256, remote.git_oid))
    return CommitRecord(
        repo_id=component.repo_id,
        commit=listing.commit,
        source=endpoint,
        created=known.created if known else utc_now(),
        files=tuple(sorted(files, key=lambda f: f.path)),
    )


def partial_key(repo_id: str, commit: str, file: FileRecord) -> str:
    """The stable name of a file's partial download (so the next run finds and resumes it)."""
    if file.sha256:
        return file.sha256
    if file.git_oid and file.git_oid.isalnum():
        return f"git-{file.git_oid}"
    return "path-" + hashlib.sha256(f"{repo_id}@{commit}:{file.path}".encode()).hexdigest()[:32]


def _fetch_one(
    store: Store, hub: Hub, component: Component, commit: str, file: FileRecord, progress: Progress
) -> FileRecord:
    """Download one file into blobs/, check it against the hub's hashes, and return its record."""
    name = f"{component.repo_id}/{file.path}"
    partial = store.partial_path(partial_key(component.repo_id, commit, file))
    remote = RemoteFile(file.path, file.size, file.sha256, file.git_oid)
    hub.fetch(component.repo_id, commit, remote, partial, lambda n: progress.advance(name, n))
    try:
        digest = hash_file(partial, git_oid=file.git_oid is not None)
    except OSError as exc:
        raise disk_error(exc, f"reading back {partial}") from exc
    expected = file.sha256 or file.git_oid
    actual = digest.sha256 if file.sha256 else digest.git_oid
    if digest.size != file.size or (expected is not None and actual != expected):
        partial.unlink(missing_ok=True)
        raise StoreError(
            f"the download of {name} does not match the hub's size or hash (expected {file.size} bytes, "
            f"{expected}; got {digest.size} bytes, {actual}); it was deleted: run the download again"
        )
    try:
        store.put_blob(partial, digest)
    except OSError as exc:
        raise disk_error(exc, f"storing {name}") from exc
    progress.finish(name)
    return FileRecord(file.path, file.size, digest.sha256, file.git_oid)


def _check_free_space(store: Store, needed: int) -> None:
    if needed <= 0:
        return
    try:
        free = shutil.disk_usage(store.base).free
    except OSError:
        return
    if free < needed:
        raise StoreError(
            f"the disk is full: the download needs {needed / 2**30:.2f} GiB more and {store.base} has "
            f"{free / 2**30:.2f} GiB free; free some space or use another --cache-dir"
        )


def download(
    store: Store,
    spec: ModelSpec,
    hub: Hub,
    *,
    revision: str | None = None,
    progress: Progress | None = None,
) -> list[ComponentState]:
    """Bring every file of ``spec`` (main repo at ``revision``) into the store; return the final states.

    The licence must have been checked by the caller. Files already in the store are not fetched
    again; interrupted ones resume.
    """
    progress = progress or NullProgress()
    with store.lock():
        plans: list[tuple[Component, str, CommitRecord]] = []
        for component in spec.components:
            wanted_revision = revision if (component is spec.main and revision) else component.revision
            listing = hub.listing(component.repo_id, wanted_revision)
            record = _record_for(store, component, listing, hub.endpoint)
            store.write_record(record)
            if (
                store.read_ref(component.repo_id, wanted_revision) is None
                and wanted_revision != listing.commit
            ):
                # First download of this revision: name it now, so an interrupted download can say
                # exactly what is missing. An existing ref moves only once the new commit is complete.
                store.write_ref(component.repo_id, wanted_revision, listing.commit)
            plans.append((component, wanted_revision, record))

        todo = [(c, r, f) for c, _, r in plans for f in r.files if not store.has_blob(f)]
        items = []
        for component, record, file in todo:
            partial = store.partial_path(partial_key(component.repo_id, record.commit, file))
            have = partial.stat().st_size if partial.is_file() else 0
            items.append(ProgressItem(f"{component.repo_id}/{file.path}", file.size, min(have, file.size)))
        _check_free_space(store, sum(item.size - item.done for item in items))
        progress.start("download", items)
        updated: dict[tuple[str, str], CommitRecord] = {(c.repo_id, r.commit): r for c, _, r in plans}
        for component, record, file in todo:
            fetched = _fetch_one(store, hub, component, record.commit, file, progress)
            key = (component.repo_id, record.commit)
            current = updated[key]
            files = tuple(fetched if f.path == fetched.path else f for f in current.files)
            updated[key] = CommitRecord(
                current.repo_id, current.commit, current.source, current.created, files
            )
            store.write_record(updated[key])

        states = []
        for component, wanted_revision, record in plans:
            if wanted_revision != record.commit:
                store.write_ref(component.repo_id, wanted_revision, record.commit)
            states.append(store.component_state(component, record.commit))
        return [_with_revision(s, r) for s, (_, r, _) in zip(states, plans, strict=True)]


def _with_revision(state: ComponentState, revision: str) -> ComponentState:
    return ComponentState(state.component, revision, state.commit, state.record, state.missing, state.size)


def files_of(store: Store, spec: ModelSpec, states: list[ComponentState], *, model_id: str) -> ModelFiles:
    """The ModelFiles of complete component states (through a view directory)."""
    view = store.build_view(spec, states)
    return ModelFiles.from_directory(view, spec=spec, model_id=model_id, revision=states[0].commit)
