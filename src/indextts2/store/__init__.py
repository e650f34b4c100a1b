"""The model store: download, cache, verify, import and export IndexTTS2 checkpoints.

Get a model's files::

    from indextts2.store import resolve_model

    files = resolve_model("IndexTeam/IndexTTS-2.5")     # from the store; downloads what it lacks
    files = resolve_model("/srv/checkpoints")           # a local directory in the official layout
    config = files.load_config()
    files.gpt, files.bigvgan_dir, files.qwen_emotion   # typed paths (qwen_emotion may be None)

The store lives under the cache root (``INDEXTTS2_HOME``, else the user cache directory); see
:mod:`indextts2.store.layout` for what is where. Downloads go through huggingface_hub (``HF_ENDPOINT``
for a mirror), resume after an interruption, are locked against a second process, and are recorded
with every file's size and SHA-256 so that :func:`verify_model` works offline. :func:`import_model`
and :func:`export_model` carry a model to a machine without network.
"""

from __future__ import annotations

from indextts2.store.archive import export_model, import_model
from indextts2.store.files import ModelFiles
from indextts2.store.inventory import (
    CachedRevision,
    CacheReport,
    FileCheck,
    RemovalPlan,
    VerifyReport,
    list_models,
    plan_removal,
    remove,
    verify_model,
)
from indextts2.store.manifest import DEFAULT_MODEL_ID, MODELS, ModelSpec, dummy_preset, get_model_spec
from indextts2.store.progress import NullProgress, Progress, ProgressItem
from indextts2.store.resolve import (
    LicenseStatus,
    accept_license,
    download_model,
    license_status,
    resolve_model,
)

__all__ = [
    "DEFAULT_MODEL_ID",
    "MODELS",
    "CacheReport",
    "CachedRevision",
    "FileCheck",
    "LicenseStatus",
    "ModelFiles",
    "ModelSpec",
    "NullProgress",
    "Progress",
    "ProgressItem",
    "RemovalPlan",
    "VerifyReport",
    "accept_license",
    "download_model",
    "dummy_preset",
    "export_model",
    "get_model_spec",
    "import_model",
    "license_status",
    "list_models",
    "plan_removal",
    "remove",
    "resolve_model",
    "verify_model",
]
