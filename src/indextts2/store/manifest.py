"""What a model is: its hub repositories, revisions and files, described once.

A :class:`ModelSpec` lists the components of a model. Each :class:`Component` is one hub repository
at one revision, with the files the pipeline needs from it and where each file sits in the *official
checkpoints layout* (the directory the official code calls ``checkpoints/``, with the auxiliary models
in subdirectories). That layout is what ``indextts2 models path`` prints, what ``models import`` reads
and ``models export`` writes, and what :class:`~indextts2.store.files.ModelFiles` names with typed
fields (each file has a ``role``). Each release is one entry in ``MODELS``: IndexTTS-2 and
IndexTTS-2.5 (whose official layout puts the auxiliary models under ``hf_cache/``). The two are told
apart by their files (:func:`detect_spec`: 2.5 has ``codec.pth`` and a ``.tiktoken`` vocabulary, 2 a
``bpe.model``), never by ``version:`` in config.yaml, which the releases do not set reliably.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from indextts2.errors import InvalidInput, ModelNotFound

__all__ = [
    "DEFAULT_MODEL_ID",
    "INDEXTTS_2",
    "INDEXTTS_2_5",
    "MODELS",
    "Component",
    "DirSpec",
    "FileSpec",
    "ModelSpec",
    "detect_spec",
    "dummy_preset",
    "get_model_spec",
    "is_repo_id",
    "validate_layout_path",
]

DEFAULT_MODEL_ID = "IndexTeam/IndexTTS-2.5"  # upstream's default since 2026-08-10; IndexTTS-2 stays supported

# Hub repo ids are "owner/name" with letters, digits, '-', '_' and '.'.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class FileSpec:
    """One file: where it is in its repo, where it goes in the official layout, and what it is."""

    role: str
    """The name of the :class:`ModelFiles` field that points at it."""
    repo_path: str
    local_path: str


@dataclass(frozen=True)
class DirSpec:
    """A directory taken whole from the repo (its file list comes from the hub's listing)."""

    role: str
    repo_prefix: str
    """Path prefix in the repo, ending with '/'."""
    local_prefix: str
    """Where it goes in the official layout, ending with '/'."""
    required: bool = True
    marker: str = "config.json"
    """A file the directory must hold to count as present (a HF model directory has config.json)."""


@dataclass(frozen=True)
class Component:
    """One hub repository of a model, at one revision."""

    name: str
    repo_id: str
    revision: str
    files: tuple[FileSpec, ...]
    dirs: tuple[DirSpec, ...] = ()

    @property
    def folder(self) -> str:
        """The repo id as one path component (``owner--name``), as huggingface_hub's cache spells it."""
        return self.repo_id.replace("/", "--")

    def local_path(self, repo_path: str) -> str | None:
        """Where a file of this repo goes in the official layout, or None when the model does not use it."""
        for spec in self.files:
            if spec.repo_path == repo_path:
                return spec.local_path
        for directory in self.dirs:
            if repo_path.startswith(directory.repo_prefix) and repo_path != directory.repo_prefix:
                return directory.local_prefix + repo_path[len(directory.repo_prefix) :]
        return None

    def repo_path(self, local_path: str) -> str | None:
        """The reverse of :meth:`local_path`: the repo path of a file of the official layout."""
        for spec in self.files:
            if spec.local_path == local_path:
                return spec.repo_path
        for directory in self.dirs:
            if local_path.startswith(directory.local_prefix) and local_path != directory.local_prefix:
                return directory.repo_prefix + local_path[len(directory.local_prefix) :]
        return None


@dataclass(frozen=True)
class ModelSpec:
    """A model: its id, its components, and the licence its weights come under.

    ``family`` names its :class:`~indextts2.model.family.ModelFamily`; ``markers`` are official-layout
    files that only this model has (how a directory's model is recognised).
    """

    model_id: str
    components: tuple[Component, ...]
    license_name: str
    license_url: str
    family: str = "IndexTTS-2"
    markers: tuple[str, ...] = ()

    @property
    def layout_hint(self) -> str:
        """One sentence naming the files of the official layout (for error messages)."""
        top = [f.local_path for f in self.main.files]
        aux = sorted({f.local_path.split("/")[0] + "/" for c in self.components[1:] for f in c.files})
        return (
            f"the official checkpoints layout of {self.model_id} is {', '.join(top)} at the top "
            f"and {', '.join(aux)} beside them"
        )

    @property
    def main(self) -> Component:
        """The component whose revision ``--revision`` pins (the model's own repo)."""
        return self.components[0]

    @property
    def folder(self) -> str:
        return self.model_id.replace("/", "--")

    def component_for_local_path(self, local_path: str) -> Component | None:
        """Which component a file of the official layout belongs to."""
        for component in self.components:
            if component.repo_path(local_path) is not None:
                return component
        return None


_LICENSE = (
    "bilibili Model Use License Agreement",
    "https://github.com/index-tts/index-tts/blob/main/LICENSE",
)

INDEXTTS_2 = ModelSpec(
    model_id="IndexTeam/IndexTTS-2",
    family="IndexTTS-2",
    markers=("bpe.model",),
    license_name=_LICENSE[0],
    license_url=_LICENSE[1],
    components=(
        Component(
            name="main",
            repo_id="IndexTeam/IndexTTS-2",
            revision="main",
            files=(
                FileSpec("config", "config.yaml", "config.yaml"),
                FileSpec("gpt", "gpt.pth", "gpt.pth"),
                FileSpec("s2mel", "s2mel.pth", "s2mel.pth"),
                FileSpec("bpe", "bpe.model", "bpe.model"),
                FileSpec("w2v_stats", "wav2vec2bert_stats.pt", "wav2vec2bert_stats.pt"),
                # feat1 is the speaker exemplar matrix (config: spk_matrix), feat2 the emotion one.
                FileSpec("speaker_matrix", "feat1.pt", "feat1.pt"),
                FileSpec("emotion_matrix", "feat2.pt", "feat2.pt"),
            ),
            # The Qwen3 text-emotion model: only needed to turn an emotion *text* into a vector.
            dirs=(DirSpec("qwen_emotion", "qwen0.6bemo4-merge/", "qwen0.6bemo4-merge/", required=False),),
        ),
        Component(
            name="w2v_bert",
            repo_id="facebook/w2v-bert-2.0",
            revision="main",
            files=(
                FileSpec("w2v_bert_config", "config.json", "w2v-bert-2.0/config.json"),
                FileSpec("w2v_bert_weights", "model.safetensors", "w2v-bert-2.0/model.safetensors"),
                FileSpec(
                    "w2v_bert_preprocessor",
                    "preprocessor_config.json",
                    "w2v-bert-2.0/preprocessor_config.json",
                ),
            ),
        ),
        Component(
            name="semantic_codec",
            repo_id="amphion/MaskGCT",
            revision="main",
            files=(
                FileSpec(
                    "semantic_codec", "semantic_codec/model.safetensors", "semantic_codec/model.safetensors"
                ),
            ),
        ),
        Component(
            name="campplus",
            repo_id="funasr/campplus",
            revision="main",
            files=(FileSpec("campplus", "campplus_cn_common.bin", "campplus/campplus_cn_common.bin"),),
        ),
        Component(
            name="bigvgan",
            repo_id="nvidia/bigvgan_v2_22khz_80band_256x",
            revision="main",
            files=(
                FileSpec("bigvgan_config", "config.json", "bigvgan/config.json"),
                FileSpec("bigvgan_weights", "bigvgan_generator.pt", "bigvgan/bigvgan_generator.pt"),
            ),
        ),
    ),
)

# IndexTTS-2.5 (official infer_v2_5.py): the auxiliary models live under hf_cache/ (w2v-BERT, CAMPPlus,
# BigVGAN; MaskGCT's codec is not used), the codec is codec.pth, the text vocabulary a tiktoken file.
TIKTOKEN_VOCABULARY = "multilingual_zh_ja_yue_char_del.tiktoken"

INDEXTTS_2_5 = ModelSpec(
    model_id="IndexTeam/IndexTTS-2.5",
    family="IndexTTS-2.5",
    markers=("codec.pth", TIKTOKEN_VOCABULARY),
    license_name=_LICENSE[0],
    license_url=_LICENSE[1],
    components=(
        Component(
            name="main",
            repo_id="IndexTeam/IndexTTS-2.5",
            revision="main",
            files=(
                FileSpec("config", "config.yaml", "config.yaml"),
                FileSpec("gpt", "gpt.pth", "gpt.pth"),
                FileSpec("s2mel", "s2mel.pth", "s2mel.pth"),
                FileSpec("codec", "codec.pth", "codec.pth"),
                FileSpec("vocabulary", TIKTOKEN_VOCABULARY, TIKTOKEN_VOCABULARY),
                FileSpec("w2v_stats", "wav2vec2bert_stats.pt", "wav2vec2bert_stats.pt"),
                FileSpec("speaker_matrix", "feat1.pt", "feat1.pt"),
                FileSpec("emotion_matrix", "feat2.pt", "feat2.pt"),
            ),
            dirs=(DirSpec("qwen_emotion", "qwen0.6bemo4-merge/", "qwen0.6bemo4-merge/", required=False),),
        ),
        Component(
            name="w2v_bert",
            repo_id="facebook/w2v-bert-2.0",
            revision="main",
            files=(
                FileSpec("w2v_bert_config", "config.json", "hf_cache/w2v-bert-2.0/config.json"),
                FileSpec("w2v_bert_weights", "model.safetensors", "hf_cache/w2v-bert-2.0/model.safetensors"),
                FileSpec(
                    "w2v_bert_preprocessor",
                    "preprocessor_config.json",
                    "hf_cache/w2v-bert-2.0/preprocessor_config.json",
                ),
            ),
        ),
        Component(
            name="campplus",
            repo_id="funasr/campplus",
            revision="main",
            files=(FileSpec("campplus", "campplus_cn_common.bin", "hf_cache/campplus_cn_common.bin"),),
        ),
        Component(
            name="bigvgan",
            repo_id="nvidia/bigvgan_v2_22khz_80band_256x",
            revision="main",
            files=(
                FileSpec("bigvgan_config", "config.json", "hf_cache/bigvgan/config.json"),
                FileSpec("bigvgan_weights", "bigvgan_generator.pt", "hf_cache/bigvgan/bigvgan_generator.pt"),
            ),
        ),
    ),
)

MODELS: dict[str, ModelSpec] = {spec.model_id: spec for spec in (INDEXTTS_2_5, INDEXTTS_2)}
"""Every model the store knows, by id."""


def detect_spec(is_file: Callable[[str], bool]) -> ModelSpec | None:
    """The model whose marker files are all present (``is_file`` takes official-layout paths), or None."""
    for spec in MODELS.values():
        if spec.markers and all(is_file(marker) for marker in spec.markers):
            return spec
    return None


DUMMY_PREFIX = "dummy:"


def is_repo_id(value: str) -> bool:
    """Whether ``value`` is spelled like a hub repo id (``owner/name``)."""
    return bool(_REPO_ID.match(value))


def dummy_preset(model: str) -> str | None:
    """The preset name of a ``dummy:NAME`` model id (``dummy:tiny`` -> ``tiny``), else None."""
    if model.startswith(DUMMY_PREFIX):
        return model[len(DUMMY_PREFIX) :]
    return None


def get_model_spec(model_id: str) -> ModelSpec:
    """The spec of a known model id.

    Raises:
        ModelNotFound: ``model_id`` is not a model the store knows.
    """
    spec = MODELS.get(model_id)
    if spec is None:
        known = ", ".join(sorted(MODELS))
        raise ModelNotFound(
            f"unknown model {model_id!r}; the store knows {known}, or give a local directory in the "
            "official checkpoints layout"
        )
    return spec


def validate_layout_path(path: str) -> str:
    """Check that a relative path (from an archive or a manifest) stays inside the directory.

    Raises:
        InvalidInput: the path is absolute, climbs out with '..', or is empty.
    """
    if not path or path.startswith(("/", "\\")) or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise InvalidInput(f"unsafe path {path!r}: paths must be relative and use '/'")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(f"unsafe path {path!r}: no empty, '.' or '..' components allowed")
    return path
