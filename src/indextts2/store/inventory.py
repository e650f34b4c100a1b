"""What the store holds (``list``), whether it is intact (``verify``), and removing it (``rm``).

Read-only scans return frozen dataclasses; removal is planned first (``plan_removal``, what ``--dry-run``
shows) and carried out by ``remove``, which plans again under the store's lock so that nothing another
process added in between is lost.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from indextts2.errors import ModelNotFound
from indextts2.store.download import partial_key
from indextts2.store.layout import CommitRecord, ComponentState, Store, hash_file, is_commit_id
from indextts2.store.manifest import DEFAULT_MODEL_ID, MODELS, ModelSpec, get_model_spec
from indextts2.store.progress import NullProgress, Progress, ProgressItem
from indextts2.store.resolve import model_states, open_store

__all__ = [
    "CacheReport",
    "CachedRevision",
    "FileCheck",
    "RemovalPlan",
    "VerifyReport",
    "list_models",
    "plan_removal",
    "remove",
    "verify_model",
]

logger = logging.getLogger(__name__)


# ---- list ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedRevision:
    """One revision of a model in the store, with the auxiliary repos it runs with."""

    model_id: str
    commit: str
    refs: tuple[str, ...]
    source: str
    size: int
    missing: tuple[str, ...]
    """Files the store lacks, as ``owner/name/path`` (optional ones included)."""

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class CacheReport:
    root: Path
    revisions: tuple[CachedRevision, ...]
    stored_bytes: int
    """Every blob in the store."""
    partial_bytes: int
    """Interrupted downloads waiting to be resumed."""


def _sizes(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def _blob_files(store: Store) -> list[Path]:
    return sorted(store.blobs_dir.iterdir()) if store.blobs_dir.is_dir() else []


def _partial_files(store: Store) -> list[Path]:
    return sorted(store.partial_dir.iterdir()) if store.partial_dir.is_dir() else []


def _states_for_commit(spec: ModelSpec, store: Store, commit: str) -> list[ComponentState]:
    return model_states(spec, store, revision=commit)


def list_models(*, cache_dir: str | Path | None = None) -> CacheReport:
    """Every model revision in the store: refs, size, and complete or which files are missing."""
    store = open_store(cache_dir)
    revisions = []
    for spec in MODELS.values():
        refs = store.refs(spec.main.repo_id)
        for record in store.records(spec.main.repo_id):
            states = _states_for_commit(spec, store, record.commit)
            revisions.append(
                CachedRevision(
                    model_id=spec.model_id,
                    commit=record.commit,
                    refs=tuple(name for name, commit in refs.items() if commit == record.commit),
                    source=record.source,
                    size=sum(s.size for s in states),
                    missing=tuple(name for s in states for name in s.missing_names()),
                )
            )
    return CacheReport(
        root=store.base,
        revisions=tuple(revisions),
        stored_bytes=_sizes(_blob_files(store)),
        partial_bytes=_sizes(_partial_files(store)),
    )


# ---- verify --------------------------------------------------------------------------------------

FileStatus = Literal["ok", "missing", "wrong size", "damaged"]


@dataclass(frozen=True)
class FileCheck:
    name: str
    """``owner/name/path``."""
    status: FileStatus
    size: int


@dataclass(frozen=True)
class VerifyReport:
    model_id: str
    commit: str | None
    checks: tuple[FileCheck, ...]
    removed: tuple[str, ...] = ()
    """Damaged files deleted from the store (``repair=True``), to be fetched again."""

    @property
    def ok(self) -> bool:
        return all(check.status == "ok" for check in self.checks)

    @property
    def problems(self) -> tuple[FileCheck, ...]:
        return tuple(check for check in self.checks if check.status != "ok")


def verify_model(
    model_id: str = DEFAULT_MODEL_ID,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    repair: bool = False,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check every file of a stored model against the size and SHA-256 recorded when it came in.

    Works offline. With ``repair``, damaged files are deleted so that the next download fetches them.

    Raises:
        ModelNotFound: unknown model id.
    """
    spec = get_model_spec(model_id)
    store = open_store(cache_dir)
    progress = progress or NullProgress()
    states = model_states(spec, store, revision=revision)
    checks: list[FileCheck] = []
    to_hash: list[tuple[str, Path, int, str]] = []
    for state in states:
        repo = state.component.repo_id
        recorded = {f.path: f for f in state.record.files} if state.record else {}
        for path in state.missing:
            if path not in recorded:
                checks.append(FileCheck(f"{repo}/{path}", "missing", 0))
        for file in recorded.values():
            name = f"{repo}/{file.path}"
            blob = store.blob_path(file.sha256) if file.sha256 else None
            if blob is None or not blob.is_file():
                checks.append(FileCheck(name, "missing", file.size))
            elif blob.stat().st_size != file.size:
                checks.append(FileCheck(name, "wrong size", file.size))
            else:
                assert file.sha256 is not None  # blob is not None
                to_hash.append((name, blob, file.size, file.sha256))
    progress.start("verify", [ProgressItem(name, size) for name, _, size, _ in to_hash])
    damaged: list[Path] = []
    for name, blob, size, sha256 in to_hash:
        digest = hash_file(blob, on_bytes=functools.partial(progress.advance, name))
        good = digest.sha256 == sha256
        checks.append(FileCheck(name, "ok" if good else "damaged", size))
        if not good:
            damaged.append(blob)
        progress.finish(name)
    removed: list[str] = []
    if repair and damaged:
        with store.lock():
            for blob in damaged:
                blob.unlink(missing_ok=True)
                removed.append(blob.name)
                logger.info("removed damaged blob %s", blob)
    return VerifyReport(
        model_id=spec.model_id,
        commit=states[0].commit,
        checks=tuple(sorted(checks, key=lambda c: c.name)),
        removed=tuple(removed),
    )


# ---- rm ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemovalPlan:
    """What ``remove`` would delete, and how many bytes that frees."""

    root: Path
    target: str
    """What was asked: ``everything``, a model id, or ``model@revision``."""
    records: tuple[tuple[str, str], ...]
    """(repo id, commit)."""
    refs: tuple[tuple[str, str], ...]
    """(repo id, revision name)."""
    views: tuple[Path, ...]
    blobs: tuple[Path, ...]
    partials: tuple[Path, ...]
    freed_bytes: int
    model_id: str | None = None
    revision: str | None = None
    everything: bool = False

    @property
    def empty(self) -> bool:
        return not (self.records or self.refs or self.views or self.blobs or self.partials)


def _all_records(store: Store) -> list[CommitRecord]:
    if not store.repos_dir.is_dir():
        return []
    found = []
    for repo_dir in sorted(store.repos_dir.iterdir()):
        commits = repo_dir / "commits"
        if not commits.is_dir():
            continue
        for entry in sorted(commits.glob("*.json")):
            if is_commit_id(entry.stem):
                record = store.read_record(_repo_id_of(repo_dir), entry.stem)
                if record is not None:
                    found.append(record)
    return found


def _prune_empty_dirs(store: Store) -> None:
    """Drop the per-repo and per-model directories a removal left empty."""
    for parent in (store.repos_dir, store.views_dir):
        if not parent.is_dir():
            continue
        for directory in parent.iterdir():
            for inner in (directory / "refs", directory / "commits", directory):
                try:
                    inner.rmdir()
                except OSError:
                    continue  # not empty (or not there): keep it


def _repo_id_of(repo_dir: Path) -> str:
    return repo_dir.name.replace("--", "/", 1)


def _plan(store: Store, *, model_id: str | None, revision: str | None, everything: bool) -> RemovalPlan:
    every_record = _all_records(store)
    if everything:
        doomed = every_record
        views = [p for p in store.views_dir.glob("*/*") if p.is_dir()] if store.views_dir.is_dir() else []
        refs = [
            (r.repo_id, name) for r in doomed for name, c in store.refs(r.repo_id).items() if c == r.commit
        ]
        target = "everything"
    else:
        if model_id is None:
            raise ModelNotFound("name a model to remove, or remove everything")
        spec = get_model_spec(model_id)
        if revision is not None:
            commit = store.resolve_commit(spec.main, revision)
            if commit is None:
                raise ModelNotFound(f"the store has no revision {revision!r} of {spec.model_id}")
            doomed = [r for r in every_record if r.repo_id == spec.main.repo_id and r.commit == commit]
            views = [v for v in store.views(spec) if v.name.startswith(commit[:12])]
            target = f"{spec.model_id}@{revision}"
        else:
            repos = {c.repo_id for c in spec.components}
            # An auxiliary repo another stored model still runs with is kept.
            for other in MODELS.values():
                if other is not spec and store.records(other.main.repo_id):
                    repos -= {c.repo_id for c in other.components}
            doomed = [r for r in every_record if r.repo_id in repos]
            views = store.views(spec)
            target = spec.model_id
        doomed_keys = {(r.repo_id, r.commit) for r in doomed}
        refs = [
            (repo_id, name)
            for repo_id in {r.repo_id for r in doomed}
            for name, commit in store.refs(repo_id).items()
            if (repo_id, commit) in doomed_keys
        ]
    doomed_keys = {(r.repo_id, r.commit) for r in doomed}
    kept_hashes = {
        f.sha256 for r in every_record if (r.repo_id, r.commit) not in doomed_keys for f in r.files
    }
    blobs: set[Path] = set()
    partials: set[Path] = set()
    for record in doomed:
        for file in record.files:
            if file.sha256 and file.sha256 not in kept_hashes and store.blob_path(file.sha256).exists():
                blobs.add(store.blob_path(file.sha256))
            partial = store.partial_path(partial_key(record.repo_id, record.commit, file))
            if partial.exists():
                partials.add(partial)
    if everything:
        blobs.update(_blob_files(store))
        partials.update(_partial_files(store))
    return RemovalPlan(
        root=store.base,
        target=target,
        records=tuple(sorted(doomed_keys)),
        refs=tuple(sorted(refs)),
        views=tuple(sorted(views)),
        blobs=tuple(sorted(blobs)),
        partials=tuple(sorted(partials)),
        freed_bytes=_sizes(blobs) + _sizes(partials),
        model_id=model_id,
        revision=revision,
        everything=everything,
    )


def plan_removal(
    model_id: str | None = None,
    *,
    revision: str | None = None,
    everything: bool = False,
    cache_dir: str | Path | None = None,
) -> RemovalPlan:
    """What removing a model (one revision of it, or everything) would delete. Changes nothing.

    Removing a whole model also removes its auxiliary repos unless another stored model uses them;
    removing one revision keeps them. Blobs still used by a remaining record are kept. The licence
    acceptance is kept.

    Raises:
        ModelNotFound: unknown model id, or a revision the store does not have.
    """
    return _plan(open_store(cache_dir), model_id=model_id, revision=revision, everything=everything)


def remove(plan: RemovalPlan, *, cache_dir: str | Path | None = None) -> RemovalPlan:
    """Carry out a removal: planned again under the lock, then refs, records, views, blobs, partials.

    Returns the plan that was carried out (what was really deleted).
    """
    store = Store(plan.root.parent) if cache_dir is None else open_store(cache_dir)
    with store.lock():
        final = _plan(store, model_id=plan.model_id, revision=plan.revision, everything=plan.everything)
        for repo_id, name in final.refs:
            store.delete_ref(repo_id, name)
        for repo_id, commit in final.records:
            store.delete_record(repo_id, commit)
        for view in final.views:
            shutil.rmtree(view, ignore_errors=True)
        for path in (*final.blobs, *final.partials):
            path.unlink(missing_ok=True)
        _prune_empty_dirs(store)
    logger.info("removed %s from %s, %d bytes freed", final.target, store.base, final.freed_bytes)
    return final
