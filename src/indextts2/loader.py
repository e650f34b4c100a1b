"""What :meth:`Synthesizer.from_pretrained` loads for a model name: networks, text front end, fingerprint.

A model name is a store id (``IndexTeam/IndexTTS-2.5``, ``IndexTeam/IndexTTS-2``), a local directory in
an official checkpoints layout, or a dummy preset (``dummy:tiny``, ``dummy:full``, ``dummy:tiny-2.5``,
``dummy:full-2.5``). The model's family (:mod:`indextts2.model.family`) decides which text front end
reads its texts: IndexTTS-2's sentencepiece :class:`~indextts2.text.TextFrontend`, or IndexTTS-2.5's
multilingual one (tiktoken vocabulary, languages). :class:`TextPreparer` gives the Synthesizer one
interface to both.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from indextts2.errors import InvalidInput
from indextts2.model.dummy import DUMMY_SEED
from indextts2.model.family import ModelFamily
from indextts2.model.pipeline import TTSModel
from indextts2.model.precision import resolve_precision

if TYPE_CHECKING:
    from indextts2.store import ModelFiles
    from indextts2.store.progress import Progress
    from indextts2.text import Segment as TextSegment
    from indextts2.text.normalize import NormalizationMode

__all__ = [
    "LoadedModel",
    "PreparedSegments",
    "TextPreparer",
    "dummy_bpe_model",
    "dummy_vocabulary",
    "family_of",
    "load_model",
    "resolve_device",
]

logger = logging.getLogger(__name__)

# The official default precision of each family's GPT on CUDA (IndexTTS-2: --fp16; IndexTTS-2.5's
# webui and infer_v2_5.__main__: use_bf16=True).
_CUDA_GPT_DTYPE = {"IndexTTS-2": torch.float16, "IndexTTS-2.5": torch.bfloat16}


@dataclass(frozen=True)
class PreparedSegments:
    """A text cut into segments, and the language it is spoken in (IndexTTS-2.5).

    Attributes:
        segments: the segments' tokens and ids.
        language: the language code used (named by the caller or detected), None for IndexTTS-2.
        language_id: its ``lang_embedding`` row, None for IndexTTS-2.
        detected: how the language was chosen when the caller named none (a sentence), else None.
    """

    segments: list[TextSegment]
    language: str | None = None
    language_id: int | None = None
    detected: str | None = None


class TextPreparer:
    """The text front end of a loaded model, behind one ``prepare`` for both families.

    Attributes:
        frontend: the underlying front end (``TextFrontend`` or ``MultilingualFrontend``).
    """

    def __init__(self, frontend: Any, *, multilingual: bool) -> None:
        self.frontend = frontend
        self.multilingual = multilingual

    def prepare(
        self,
        text: str,
        *,
        language: str | None,
        max_tokens_per_segment: int,
        quick_streaming_tokens: int = 0,
    ) -> PreparedSegments:
        """Validate and segment a text (see the front ends' ``prepare``).

        Raises:
            InvalidInput, EmptyText, TextTooLong: bad text, an unknown language, bad limits.
        """
        if not self.multilingual:
            if language is not None:  # the family check refuses it first; a guard for direct callers
                raise InvalidInput("this model takes no language")
            segments = self.frontend.prepare(
                text,
                max_tokens_per_segment=max_tokens_per_segment,
                quick_streaming_tokens=quick_streaming_tokens,
            )
            return PreparedSegments(list(segments))
        prepared = self.frontend.prepare(
            text,
            language=language,
            max_tokens_per_segment=max_tokens_per_segment,
            quick_streaming_tokens=quick_streaming_tokens,
        )
        detected = None
        if prepared.detected is not None:
            detected = f"{prepared.language} ({prepared.detected.reason})"
        return PreparedSegments(list(prepared.segments), prepared.language, prepared.lang_id, detected)

    def count(self, text: str, *, language: str | None, max_tokens_per_segment: int) -> int:
        """How many segments ``prepare`` makes, without logging its warnings again (``analyze``)."""
        if not self.multilingual:
            return len(self.frontend.analyze(text).segments(max_tokens_per_segment))
        analysis = self.frontend.analyze(text, language=language)
        return len(analysis.split(max_tokens_per_segment).segments)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve: its networks, its text front end, its id and voice fingerprint."""

    model: TTSModel
    text: TextPreparer
    model_id: str
    fingerprint: str

    @property
    def family(self) -> ModelFamily:
        return self.model.family


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; anything else is checked to exist."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise InvalidInput(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(f"device {device!r} was asked for, but CUDA is not available here")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise InvalidInput(f"device {device!r} does not exist: {torch.cuda.device_count()} GPU(s) here")
    return resolved


def dummy_bpe_model() -> Path:
    """The small BPE model of the IndexTTS-2 dummy presets (the golden checkpoint's, 1000 pieces)."""
    with resources.as_file(resources.files("indextts2.model.presets") / "bpe.model") as path:
        return Path(path)


def dummy_vocabulary() -> Path:
    """The small tiktoken vocabulary of the IndexTTS-2.5 dummy presets (the 2.5 golden checkpoint's:
    1,306 ranks made by the goldens' harness from their texts, plus the 1,673 special tokens)."""
    folder = resources.files("indextts2.model.presets") / "tiny-2.5"
    with resources.as_file(folder / "multilingual_zh_ja_yue_char_del.tiktoken") as path:
        return Path(path)


def _fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _files_fingerprint(files: ModelFiles, model: TTSModel) -> str:
    """What the voice conditioning depends on: the configs and the voice networks' files."""
    roles = ("w2v_bert_weights", "w2v_stats", "semantic_codec", "campplus", "s2mel", "gpt")
    sizes = {role: path.stat().st_size for role, path in files.paths().items() if role in roles}
    return _fingerprint({"config": model.config.main, "w2v_bert": model.config.w2v_bert, "sizes": sizes})


def _text_preparer(
    family: ModelFamily,
    model: TTSModel,
    *,
    root: Path | None,
    max_text_chars: int,
    normalization: NormalizationMode,
) -> TextPreparer:
    """The family's text front end, from the model directory (None: the dummy presets' vocabulary)."""
    if not family.supports_language:
        from indextts2.text import TextFrontend

        if root is not None:
            frontend = TextFrontend.from_model(
                root, max_text_chars=max_text_chars, normalization=normalization
            )
        else:
            # the golden checkpoint's 1000-piece vocabulary lacks most Chinese characters: no warning
            frontend = TextFrontend.from_model(
                dummy_bpe_model(),
                max_text_chars=max_text_chars,
                warn_unknown_pieces=False,
                normalization=normalization,
            )
        return TextPreparer(frontend, multilingual=False)
    from indextts2.text.multilingual import MultilingualFrontend

    if root is not None:
        multilingual = MultilingualFrontend.from_model(
            root, max_text_chars=max_text_chars, normalization=normalization
        )
    else:
        multilingual = MultilingualFrontend(
            dummy_vocabulary(),
            max_text_chars=max_text_chars,
            max_text_tokens=model.gpt.config.max_text_tokens,
            normalization=normalization,
        )
    return TextPreparer(multilingual, multilingual=True)


def family_of(model: str | Path) -> ModelFamily:
    """The family of a model name without loading it: a dummy preset's, a store id's, or the family a
    local directory's files show (IndexTTS-2 when it is none of these)."""
    from indextts2.model.family import family_named, family_of_preset
    from indextts2.store import dummy_preset
    from indextts2.store.manifest import MODELS, detect_spec

    name = str(model)
    preset = dummy_preset(name)
    if preset is not None:
        return family_of_preset(preset)
    if name in MODELS:
        return family_named(MODELS[name].family)
    root = Path(name).expanduser()
    spec = detect_spec(lambda rel: (root / rel).is_file()) if root.is_dir() else None
    return family_named(spec.family if spec is not None else "IndexTTS-2")


def load_model(
    model: str | Path,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    offline: bool | None = None,
    accept_license: bool | None = None,
    progress: Progress | None = None,
    max_text_chars: int,
    normalization: NormalizationMode = "corrected",
) -> LoadedModel:
    """Load a model and its text front end on ``device`` (see :meth:`Synthesizer.from_pretrained`)."""
    from indextts2.store import dummy_preset, resolve_model

    target = resolve_device(device)
    name = str(model)
    preset = dummy_preset(name)
    root: Path | None = None
    if preset is not None:
        network = TTSModel.dummy(preset)
        fingerprint = _fingerprint({"preset": preset, "seed": DUMMY_SEED})
    else:
        files = resolve_model(
            name,
            revision=revision,
            cache_dir=cache_dir,
            offline=offline,
            accept_license=accept_license,
            progress=progress,
        )
        network = TTSModel.from_files(files)
        fingerprint = _files_fingerprint(files, network)
        name, root = files.model_id, files.root
    family = network.family
    text = _text_preparer(
        family, network, root=root, max_text_chars=max_text_chars, normalization=normalization
    )
    gpt_dtype = resolve_precision(dtype) if dtype is not None else None
    if gpt_dtype is None:
        gpt_dtype = _CUDA_GPT_DTYPE[family.name] if target.type == "cuda" else torch.float32
    network.to(target)
    network.set_gpt_dtype(gpt_dtype)
    logger.info("loaded %s (%s) on %s (GPT in %s)", name, family.name, target, gpt_dtype)
    return LoadedModel(network, text, name, fingerprint)
