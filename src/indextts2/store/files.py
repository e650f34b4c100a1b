"""``ModelFiles``: typed paths of every checkpoint file of a model, in the official layout.

The model code never builds a checkpoint path itself: it asks a ``ModelFiles`` (from
:func:`indextts2.store.resolve_model`, which accepts a hub id or a plain local directory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indextts2.errors import InvalidInput, ModelFilesMissing, ModelNotFound
from indextts2.store.manifest import INDEXTTS_2, MODELS, ModelSpec, detect_spec

if TYPE_CHECKING:
    from indextts2.model.config import ModelConfig

__all__ = ["ModelFiles", "layout_paths", "missing_from_layout"]

LAYOUT_HINT = "; ".join(spec.layout_hint for spec in MODELS.values())


@dataclass(frozen=True)
class ModelFiles:
    """Where every file of one model is. All paths are absolute and exist.

    Attributes:
        root: the model directory, in the official checkpoints layout.
        model_id: the hub id (``IndexTeam/IndexTTS-2``) or, for a local directory, its path.
        revision: the commit of the model's own repo in the store; None for a plain local directory.
        family: the model family (``IndexTTS-2``, ``IndexTTS-2.5``: :mod:`indextts2.model.family`).
        bpe, semantic_codec: IndexTTS-2's sentencepiece vocabulary and MaskGCT codec (None in 2.5).
        codec, vocabulary: IndexTTS-2.5's ``codec.pth`` and tiktoken vocabulary (None in 2).
        qwen_emotion: the Qwen3 text-emotion model directory, or None when the model has none (it is
            only needed to derive emotions from a text).
    """

    root: Path
    model_id: str
    revision: str | None
    config: Path
    gpt: Path
    s2mel: Path
    w2v_stats: Path
    speaker_matrix: Path
    """feat1.pt: the speaker exemplars (config key ``spk_matrix``)."""
    emotion_matrix: Path
    """feat2.pt: the emotion exemplars (config key ``emo_matrix``)."""
    w2v_bert_config: Path
    w2v_bert_weights: Path
    w2v_bert_preprocessor: Path
    campplus: Path
    bigvgan_config: Path
    bigvgan_weights: Path
    family: str = "IndexTTS-2"
    bpe: Path | None = None
    semantic_codec: Path | None = None
    codec: Path | None = None
    vocabulary: Path | None = None
    qwen_emotion: Path | None = None

    @property
    def w2v_bert_dir(self) -> Path:
        """The w2v-BERT 2.0 directory (config.json, model.safetensors, preprocessor_config.json)."""
        return self.w2v_bert_config.parent

    @property
    def bigvgan_dir(self) -> Path:
        """The BigVGAN directory (config.json, bigvgan_generator.pt)."""
        return self.bigvgan_config.parent

    def load_config(self) -> ModelConfig:
        """config.yaml with the w2v-BERT and BigVGAN configs (:func:`indextts2.model.config.load_config`)."""
        from indextts2.model.config import load_config

        return load_config(self.config, w2v_bert_dir=self.w2v_bert_dir, bigvgan_dir=self.bigvgan_dir)

    def paths(self) -> dict[str, Path]:
        """Every path by role (``gpt``, ``campplus``...); the Qwen directory only when present."""
        values = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in ("root", "model_id", "revision", "family")
        }
        return {role: path for role, path in values.items() if path is not None}

    @classmethod
    def from_directory(
        cls,
        directory: str | Path,
        *,
        spec: ModelSpec | None = None,
        model_id: str | None = None,
        revision: str | None = None,
    ) -> ModelFiles:
        """The files of a model directory in the official layout; nothing is read or downloaded.

        Args:
            spec: the model the directory must hold; None: recognised by its files (:func:`detect_spec`).

        Raises:
            ModelNotFound: the directory does not exist or holds none of the model's files.
            ModelFilesMissing: some required files are missing (all of them are named).
            InvalidInput: ``spec`` names another model than the one the directory holds.
        """
        root = Path(directory).expanduser().resolve()
        name = model_id or str(root)
        if not root.is_dir():
            raise ModelNotFound(f"model directory {root} does not exist")
        found = detect_spec(lambda rel: (root / rel).is_file())
        if spec is not None and found is not None and found is not spec:
            raise InvalidInput(
                f"{root} holds an {found.family} model ({found.model_id}), not {spec.model_id}"
            )
        spec = spec or found or INDEXTTS_2
        missing = missing_from_layout(lambda rel: (root / rel).is_file(), spec)
        if missing:
            main_files = [f.local_path for f in spec.main.files]
            if found is None and set(missing) >= set(main_files):
                raise ModelNotFound(
                    f"{root} is not a model directory: it has none of its files ({LAYOUT_HINT})"
                )
            raise ModelFilesMissing(name, missing, hint=spec.layout_hint)
        values: dict[str, Path | None] = {}
        for component in spec.components:
            for file in component.files:
                values[file.role] = root / file.local_path
            for directory_spec in component.dirs:
                candidate = root / directory_spec.local_prefix
                present = (candidate / directory_spec.marker).is_file()
                values[directory_spec.role] = candidate if present else None
        return cls(
            root=root,
            model_id=name,
            revision=revision,
            family=spec.family,
            **values,  # type: ignore[arg-type]
        )


def layout_paths(directory: str | Path) -> tuple[ModelSpec, dict[str, Path]]:
    """The model a directory holds (by its marker files; IndexTTS-2 when none is there) and where each
    of its files would be, by role; nothing needs to exist (a partial copy names what it lacks when
    a file is opened)."""
    root = Path(directory)
    spec = detect_spec(lambda rel: (root / rel).is_file()) or INDEXTTS_2
    paths = {f.role: root / f.local_path for c in spec.components for f in c.files}
    return spec, paths


def missing_from_layout(is_file: Callable[[str], bool], spec: ModelSpec = INDEXTTS_2) -> list[str]:
    """The official-layout paths of the required files that ``is_file`` says are absent.

    Required directories count as missing when their marker file is absent.
    """
    missing: list[str] = []
    for component in spec.components:
        missing.extend(f.local_path for f in component.files if not is_file(f.local_path))
        missing.extend(
            d.local_prefix + d.marker
            for d in component.dirs
            if d.required and not is_file(d.local_prefix + d.marker)
        )
    return missing


def layout_roles(spec: ModelSpec = INDEXTTS_2) -> Iterable[str]:
    """Every role the spec names (the file fields of :class:`ModelFiles`)."""
    for component in spec.components:
        yield from (f.role for f in component.files)
        yield from (d.role for d in component.dirs)
