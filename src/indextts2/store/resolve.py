"""``resolve_model``: a model id or a local directory in, typed paths of every checkpoint file out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from indextts2.errors import ModelFilesMissing, ModelNotFound
from indextts2.store.download import download, files_of, license_accepted, record_license, require_license
from indextts2.store.files import ModelFiles
from indextts2.store.hub import Hub
from indextts2.store.layout import ComponentState, Store
from indextts2.store.manifest import (
    DEFAULT_MODEL_ID,
    MODELS,
    ModelSpec,
    dummy_preset,
    get_model_spec,
    is_repo_id,
)
from indextts2.store.progress import Progress

__all__ = [
    "LicenseStatus",
    "accept_license",
    "cached_model",
    "download_model",
    "license_status",
    "model_states",
    "open_store",
    "resolve_model",
]

logger = logging.getLogger(__name__)

OFFLINE_HINT = (
    "working offline: run `indextts2 models download` where there is network, or bring the files in with "
    "`indextts2 models import` (an archive from `indextts2 models export`, or a checkpoints directory)"
)


def open_store(cache_dir: str | Path | None = None) -> Store:
    """The store under ``cache_dir``, or under INDEXTTS2_HOME / the user cache dir when None."""
    if cache_dir is None:
        from indextts2.settings import Settings

        cache_dir = Settings.from_env().home
    return Store(cache_dir)


def _offline_default(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    from indextts2.settings import Settings

    return Settings.from_env().offline


def _accept_default(accept: bool | None) -> bool:
    if accept is not None:
        return accept
    from indextts2.settings import Settings

    return Settings.from_env().accept_license


def _hub(endpoint: str | None, token: str | bool | None) -> Hub:
    if endpoint is None:
        from indextts2.settings import Settings

        endpoint = Settings.from_env().hub_endpoint
    return Hub(endpoint, token=token)


def model_states(spec: ModelSpec, store: Store, *, revision: str | None = None) -> list[ComponentState]:
    """What the store holds of each component of ``spec`` (the main one at ``revision``)."""
    return [
        store.component_state(c, revision if (c is spec.main and revision) else c.revision)
        for c in spec.components
    ]


def cached_model(spec: ModelSpec, store: Store, *, revision: str | None = None, hint: str = "") -> ModelFiles:
    """The model from the store alone, never the network.

    Raises:
        ModelFilesMissing: a required file is not in the store; every missing file is named.
    """
    states = model_states(spec, store, revision=revision)
    missing = [f"{s.component.repo_id}/{p}" for s in states for p in s.required_missing()]
    if missing:
        raise ModelFilesMissing(spec.model_id, missing, hint=hint)
    for state in states:
        optional = [p for p in state.missing if p not in state.required_missing()]
        if optional:
            logger.warning(
                "%s: %d file(s) of an optional part are missing (%s); run `indextts2 models download` to "
                "complete it",
                spec.model_id,
                len(optional),
                ", ".join(optional[:3]),
            )
    return files_of(store, spec, states, model_id=spec.model_id)


@dataclass(frozen=True)
class LicenseStatus:
    model_id: str
    license_name: str
    license_url: str
    accepted: bool


def license_status(model_id: str = DEFAULT_MODEL_ID, *, cache_dir: str | Path | None = None) -> LicenseStatus:
    """Whether the weights' licence of ``model_id`` was accepted in this store, and where it is."""
    spec = get_model_spec(model_id)
    store = open_store(cache_dir)
    return LicenseStatus(spec.model_id, spec.license_name, spec.license_url, license_accepted(store, spec))


def accept_license(
    model_id: str = DEFAULT_MODEL_ID, *, cache_dir: str | Path | None = None, accepted_by: str = "argument"
) -> None:
    """Record that the weights' licence of ``model_id`` is accepted (kept in the store)."""
    spec = get_model_spec(model_id)
    store = open_store(cache_dir)
    if not license_accepted(store, spec):
        record_license(store, spec, accepted_by=accepted_by)


def download_model(
    model_id: str = DEFAULT_MODEL_ID,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    accept_license: bool | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: Progress | None = None,
) -> ModelFiles:
    """Bring a model into the store (asking the hub which commit ``revision`` is now) and return its files.

    Args:
        model_id: a known model id (``IndexTeam/IndexTTS-2``).
        revision: branch, tag or commit of the model's own repo (default: the manifest's, ``main``).
        cache_dir: the cache root (default: INDEXTTS2_HOME or the user cache dir).
        offline: use the store only (default: INDEXTTS2_OFFLINE / HF_HUB_OFFLINE).
        accept_license: accept the weights' licence (default: INDEXTTS2_ACCEPT_LICENSE).
        endpoint: the hub or a mirror (default: HF_ENDPOINT, else huggingface.co).
        token: a hub token (default: huggingface_hub's, from HF_TOKEN or its login).
        progress: told about every file and byte.

    Raises:
        ModelNotFound: unknown model id, or the hub has no such repo or revision.
        LicenseNotAccepted: the licence was never accepted and ``accept_license`` is false.
        ModelFilesMissing: offline, and the store lacks files (all named).
        StoreError: the network, the hub or the disk failed; what arrived is kept and resumed next time.
    """
    spec = get_model_spec(model_id)
    store = open_store(cache_dir)
    if _offline_default(offline):
        return cached_model(spec, store, revision=revision, hint=OFFLINE_HINT)
    require_license(store, spec, accept=_accept_default(accept_license))
    states = download(store, spec, _hub(endpoint, token), revision=revision, progress=progress)
    return files_of(store, spec, states, model_id=spec.model_id)


def resolve_model(
    model_id_or_path: str | Path = DEFAULT_MODEL_ID,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    accept_license: bool | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: Progress | None = None,
) -> ModelFiles:
    """Typed paths of every checkpoint file of a model, downloading only what the store lacks.

    ``model_id_or_path`` is a known model id (``IndexTeam/IndexTTS-2``) or a local directory in the
    official checkpoints layout (used in place: no download, no copy). A model complete in the store
    is returned without touching the network; run :func:`download_model` to pick up a newer revision.

    ``dummy:tiny`` and ``dummy:full`` have no files (``Synthesizer.from_pretrained`` builds them from a
    preset with random weights): resolve_model raises ModelNotFound for them, saying so. Test
    :func:`indextts2.store.manifest.dummy_preset` first.

    Other arguments: see :func:`download_model`.

    Raises:
        ModelNotFound: unknown id, missing or non-model directory, a dummy id.
        ModelFilesMissing: a directory or (offline) the store lacks files; all are named.
        LicenseNotAccepted: a download is needed and the licence was never accepted.
        StoreError: the network, the hub or the disk failed.
    """
    name = str(model_id_or_path)
    preset = dummy_preset(name)
    if preset is not None:
        raise ModelNotFound(
            f"{name} has no files to resolve: it is built from the '{preset}' preset with random weights "
            "(Synthesizer.from_pretrained does that); resolve_model is for real checkpoints"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelFiles.from_directory(path)
    if name in MODELS:
        spec = MODELS[name]
        store = open_store(cache_dir)
        is_offline = _offline_default(offline)
        try:
            return cached_model(spec, store, revision=revision, hint=OFFLINE_HINT if is_offline else "")
        except ModelFilesMissing:
            if is_offline:
                raise
        require_license(store, spec, accept=_accept_default(accept_license))
        states = download(store, spec, _hub(endpoint, token), revision=revision, progress=progress)
        return files_of(store, spec, states, model_id=spec.model_id)
    if path.exists():
        raise ModelNotFound(
            f"{name} is a file, not a model directory; to bring in an archive run "
            f"`indextts2 models import {name}`"
        )
    if is_repo_id(name):
        get_model_spec(name)  # raises: the store does not know this id
    raise ModelNotFound(f"no model directory {path} and no known model id {name!r}")
