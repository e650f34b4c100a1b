"""Options shared by the library, the CLI and the server: emotion control and generation settings.

Everything here is a frozen dataclass validated on construction, so that a bad value fails with a
:class:`~indextts2.errors.InvalidInput` naming what to fix before any audio is produced.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from indextts2.errors import InvalidInput

if TYPE_CHECKING:
    from indextts2.audio import Audio, AudioSource

    EmotionAudio = AudioSource | Audio

__all__ = [
    "EMOTIONS",
    "Emotion",
    "GenerationOptions",
    "SynthesisOptions",
    "normalize_emotion_weights",
]

# The order of IndexTTS2's eight emotion weights (the official infer's `emo_vector` and the rows of
# feat1.pt / feat2.pt, grouped by config.yaml's `emo_num`).
EMOTIONS: tuple[str, ...] = (
    "happy",
    "angry",
    "sad",
    "afraid",
    "disgusted",
    "melancholic",
    "surprised",
    "calm",
)

# The official web UI's per-emotion damping and total cap (IndexTTS2.normalize_emo_vec); the
# official infer itself does not apply them.
_EMOTION_BIAS = (0.9375, 0.875, 1.0, 1.0, 0.9375, 0.9375, 0.6875, 0.5625)
_EMOTION_SUM_CAP = 0.8
MAX_EMOTION_TEXT_CHARS = 1000  # an emotion description, not a document
# Float sums such as 0.1 + 0.2 + ... may exceed 1 by a rounding error; that is still "at most 1".
_SUM_SLACK = 1e-6


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")
    return number


def _eight_weights(vector: Mapping[str, float] | Sequence[float]) -> list[float]:
    """The eight weights in EMOTIONS order, from a name->weight mapping or an 8-long sequence.

    Refuses unknown names, a wrong count, non-numbers, non-finite and negative weights.
    """
    if isinstance(vector, Mapping):
        unknown = [str(name) for name in vector if name not in EMOTIONS]
        if unknown:
            raise InvalidInput(f"unknown emotion name(s) {', '.join(unknown)}; use {', '.join(EMOTIONS)}")
        values: list[Any] = [vector.get(name, 0.0) for name in EMOTIONS]
    elif isinstance(vector, (str, bytes)) or not isinstance(vector, Sequence):
        raise InvalidInput(
            "an emotion vector is a mapping of emotion names to weights or a sequence of 8 weights "
            f"({', '.join(EMOTIONS)})"
        )
    else:
        values = list(vector)
        if len(values) != len(EMOTIONS):
            raise InvalidInput(
                f"an emotion vector has {len(EMOTIONS)} weights ({', '.join(EMOTIONS)}), got {len(values)}"
            )
    weights = [
        _finite_number(f"emotion weight '{name}'", value)
        for name, value in zip(EMOTIONS, values, strict=True)
    ]
    negative = [name for name, weight in zip(EMOTIONS, weights, strict=True) if weight < 0]
    if negative:
        raise InvalidInput(f"emotion weights cannot be negative ({', '.join(negative)})")
    return weights


def _emotion_weights(vector: Mapping[str, float] | Sequence[float]) -> tuple[float, ...]:
    """Validated weights for :class:`Emotion`: as :func:`_eight_weights`, summing to at most 1."""
    weights = _eight_weights(vector)
    total = sum(weights)
    if total > 1.0 + _SUM_SLACK:
        raise InvalidInput(
            f"emotion weights sum to {total:g}, more than 1: they blend with the speaker's own emotion, "
            "which gets 1 - sum; scale them down (normalize_emotion_weights caps the sum at 0.8 as the "
            "official web UI does)"
        )
    return tuple(weights)


def normalize_emotion_weights(
    vector: Mapping[str, float] | Sequence[float], *, apply_bias: bool = True
) -> tuple[float, ...]:
    """The official web UI's preparation of an emotion vector (``IndexTTS2.normalize_emo_vec``).

    Optionally damps each emotion by a fixed factor (surprised and calm most), then scales the
    weights down so that they sum to at most 0.8. The official ``infer`` does not do this itself;
    use it to get the web UI's behaviour. Negative or non-finite weights are refused; a sum above 1
    is allowed here (that is what this function is for).

    Returns:
        The eight weights in :data:`EMOTIONS` order.
    """
    weights = _eight_weights(vector)
    if apply_bias:
        weights = [weight * bias for weight, bias in zip(weights, _EMOTION_BIAS, strict=True)]
    total = sum(weights)
    if total > _EMOTION_SUM_CAP:
        weights = [weight * (_EMOTION_SUM_CAP / total) for weight in weights]
    return tuple(weights)


@dataclass(frozen=True)
class Emotion:
    """How the speech should sound, emotionally.

    Exactly one source is used:

    - ``Emotion()``: the speaker clip's own emotion (the official default).
    - ``Emotion(audio=clip, alpha=0.6)``: the emotion of another clip, blended with the speaker's:
      ``speaker + alpha * (clip - speaker)``.
    - ``Emotion(vector={"sad": 0.3, "surprised": 0.2})`` (or 8 weights in :data:`EMOTIONS`
      order): a mix of learnt emotion exemplars; the rest (1 - sum) stays the speaker's emotion.
      ``alpha`` scales the weights (truncated to 4 decimals, as the official infer does) and
      ``random=True`` picks the exemplars at random instead of the ones closest to the speaker's style.
    - ``Emotion(text="she is thrilled")``: the weights come from the model's text-emotion classifier
      (Qwen3), then act as a vector (``alpha`` and ``random`` apply as for a vector).

    Args:
        audio: an emotion reference clip (path, bytes, file object or :class:`~indextts2.Audio`).
        alpha: strength in [0, 1] of the emotion clip or of the vector.
        vector: emotion weights, each >= 0, summing to at most 1.
        random: choose the exemplar rows at random (vector and text modes).
        text: a description of the emotion, classified by the model (at most 1,000 characters).

    Raises:
        InvalidInput: for an alpha outside [0, 1], unknown emotion names, negative or non-finite
            weights, weights summing to more than 1, or options that do not go together.
    """

    audio: EmotionAudio | None = None
    alpha: float = 1.0
    vector: Mapping[str, float] | Sequence[float] | None = None
    random: bool = False
    text: str | None = None

    def __post_init__(self) -> None:
        alpha = _finite_number("emotion alpha", self.alpha)
        if not 0.0 <= alpha <= 1.0:
            raise InvalidInput(f"emotion alpha must be between 0 and 1, got {self.alpha!r}")
        object.__setattr__(self, "alpha", alpha)
        if self.vector is not None:
            object.__setattr__(self, "vector", _emotion_weights(self.vector))
            if self.audio is not None:
                raise InvalidInput(
                    "give either an emotion clip (audio) or an emotion vector, not both "
                    "(the official infer ignores the clip when a vector is given)"
                )
        if self.text is not None:
            if not isinstance(self.text, str) or not self.text.strip():
                raise InvalidInput("emotion text must be a non-empty string describing the emotion")
            if len(self.text) > MAX_EMOTION_TEXT_CHARS:
                raise InvalidInput(
                    f"emotion text has {len(self.text):,} characters; "
                    f"keep it under {MAX_EMOTION_TEXT_CHARS:,}"
                )
            if self.vector is not None or self.audio is not None:
                raise InvalidInput("give one emotion source: an emotion text, a clip (audio) or a vector")
        if not isinstance(self.random, bool):
            raise InvalidInput(f"emotion random must be True or False, got {self.random!r}")
        if self.random and self.vector is None and self.text is None:
            raise InvalidInput(
                "random exemplar choice only applies to an emotion vector or text; "
                "give vector=... or text=..."
            )
        if alpha != 1.0 and self.mode == "speaker":
            raise InvalidInput(
                "alpha sets the strength of an emotion clip or vector; give audio=... or vector=... "
                "(the speaker's own emotion has no strength to set)"
            )

    @classmethod
    def from_mapping(
        cls, weights: Mapping[str, float], *, alpha: float = 1.0, random: bool = False
    ) -> Emotion:
        """An emotion vector from names: ``Emotion.from_mapping({"sad": 0.3, "surprised": 0.2})``."""
        return cls(vector=weights, alpha=alpha, random=random)

    @property
    def mode(self) -> str:
        """``"speaker"``, ``"audio"``, ``"vector"`` or ``"text"``: which source this emotion uses."""
        if self.vector is not None:
            return "vector"
        if self.text is not None:
            return "text"
        if self.audio is not None:
            return "audio"
        return "speaker"

    @property
    def weights(self) -> dict[str, float]:
        """The vector as a name -> weight mapping (empty when there is no vector)."""
        vector = self._weights()
        return {} if vector is None else dict(zip(EMOTIONS, vector, strict=True))

    def _weights(self) -> tuple[float, ...] | None:
        # __post_init__ stored the validated tuple
        return None if self.vector is None else cast("tuple[float, ...]", self.vector)

    def scaled_vector(self, weights: Sequence[float] | None = None) -> tuple[float, ...] | None:
        """The weights the model blends: scaled by alpha and truncated to 4 decimals when alpha != 1.

        This is the official infer's arithmetic (``int(w * alpha * 10000) / 10000``), kept so that
        results match it. ``weights`` replaces the vector (the classified weights of a text emotion).
        """
        vector = self._weights() if weights is None else tuple(float(w) for w in weights)
        if vector is None or self.alpha == 1.0:
            return vector
        return tuple(int(weight * self.alpha * 10000) / 10000 for weight in vector)


@dataclass(frozen=True)
class GenerationOptions:
    """How the GPT stage draws semantic codes. The defaults are the official infer's.

    Args:
        temperature: divides the scores before filtering; > 0.
        top_k: keep the k best codes (0 = no limit). With beam search at least 2 are kept per beam.
        top_p: nucleus filtering, in (0, 1]; 1 disables it.
        repetition_penalty: > 0; 1 disables it. Codes seen before (and, as in the official code, the
            placeholder prompt id 1 and the start code) get their score divided by it when positive,
            multiplied by it when negative.
        num_beams: beam-search width (1 = plain sampling). The official default samples in 3 beams.
        length_penalty: exponent of the length normalisation of finished beams (official: 0, none).
        max_codes: at most this many codes per segment (~50 per second of speech).
        seed: seeds the request's own random generator; None draws a fresh seed.

    ``top_k=1`` makes decoding deterministic whatever the seed.
    """

    temperature: float = 0.8
    top_k: int = 30
    top_p: float = 0.8
    repetition_penalty: float = 10.0
    num_beams: int = 3
    length_penalty: float = 0.0
    max_codes: int = 1500
    seed: int | None = None

    def __post_init__(self) -> None:
        temperature = _finite_number("temperature", self.temperature)
        if temperature <= 0:
            raise InvalidInput(f"temperature must be > 0, got {self.temperature!r} (use top_k=1 for greedy)")
        top_p = _finite_number("top_p", self.top_p)
        if not 0.0 < top_p <= 1.0:
            raise InvalidInput(f"top_p must be in (0, 1], got {self.top_p!r}")
        penalty = _finite_number("repetition_penalty", self.repetition_penalty)
        if penalty <= 0:
            raise InvalidInput(
                f"repetition_penalty must be > 0 (1 disables it), got {self.repetition_penalty!r}"
            )
        length_penalty = _finite_number("length_penalty", self.length_penalty)
        for name in ("top_k", "num_beams", "max_codes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{name} must be an integer, got {value!r}")
        if self.top_k < 0:
            raise InvalidInput(f"top_k must be >= 0 (0 = no limit), got {self.top_k}")
        if self.num_beams < 1:
            raise InvalidInput(f"num_beams must be >= 1, got {self.num_beams}")
        if self.max_codes < 1:
            raise InvalidInput(f"max_codes must be >= 1, got {self.max_codes}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InvalidInput(f"seed must be an integer or None, got {self.seed!r}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidInput(f"seed must be in [0, 2**63), got {self.seed}")
        object.__setattr__(self, "temperature", temperature)
        object.__setattr__(self, "top_p", top_p)
        object.__setattr__(self, "repetition_penalty", penalty)
        object.__setattr__(self, "length_penalty", length_penalty)


# The official infer's fixed values (infer_v2.py), our defaults.
DEFAULT_SEGMENT_TOKENS = 120  # max_text_tokens_per_segment
DEFAULT_DIFFUSION_STEPS = 25  # diffusion_steps
DEFAULT_CFG_RATE = 0.7  # inference_cfg_rate
DEFAULT_INTERVAL_SILENCE_MS = 200  # interval_silence
SPEED_RANGE = (0.5, 2.0)  # ours: beyond this the length regulator's stretch sounds broken
DURATION_RANGE = (0.5, 2.0)  # IndexTTS-2.5's duration_factor (the official web UI's slider)
MAX_LANGUAGE_CHARS = 16


@dataclass(frozen=True)
class SynthesisOptions:
    """How a text is spoken: one frozen value shared by the library, the CLI and the server.

    The defaults are the official infer's. Construction validates every field, so a bad value
    fails before any audio is produced.

    Args:
        temperature, top_k, top_p, repetition_penalty, num_beams, length_penalty, max_codes, seed:
            the GPT's sampling (see :class:`GenerationOptions`); ``seed`` also seeds the flow's noise,
            so a fixed seed gives the same audio every time.
        max_text_tokens_per_segment: the text is cut into segments of at most this many tokens.
        diffusion_steps: Euler steps of the flow matching (25; fewer is faster and coarser).
        cfg_rate: classifier-free guidance weight of the flow matching (0.7; 0 turns it off).
        interval_silence_ms: silence between segments, in milliseconds.
        speed: speaking rate (0.5 to 2.0; 1 is the model's own). Ours: it changes how many mel frames
            each semantic code gets, so the tempo changes and the pitch does not.
        language: the text's language code for IndexTTS-2.5 (``zh``, ``en``, ``ja``, ``es``, ``ar``, or
            one of the official fall-backs); None detects it from the script. IndexTTS-2 takes none
            (the Synthesizer refuses one).
        duration: IndexTTS-2.5's duration factor (0.5 to 2.0; official ``duration_factor``): the length
            of the speech, 1.25 = 25 % longer (slower). IndexTTS-2 has none (use ``speed``); on 2.5
            both apply (``speed`` divides the factor).
    """

    temperature: float = 0.8
    top_k: int = 30
    top_p: float = 0.8
    repetition_penalty: float = 10.0
    num_beams: int = 3
    length_penalty: float = 0.0
    max_codes: int = 1500
    seed: int | None = None
    max_text_tokens_per_segment: int = DEFAULT_SEGMENT_TOKENS
    diffusion_steps: int = DEFAULT_DIFFUSION_STEPS
    cfg_rate: float = DEFAULT_CFG_RATE
    interval_silence_ms: int = DEFAULT_INTERVAL_SILENCE_MS
    speed: float = 1.0
    language: str | None = None
    duration: float = 1.0

    def __post_init__(self) -> None:
        self.generation  # noqa: B018 - constructing it validates the sampling fields
        for name in ("max_text_tokens_per_segment", "diffusion_steps", "interval_silence_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{name} must be an integer, got {value!r}")
        if self.max_text_tokens_per_segment < 1:
            raise InvalidInput(
                f"max_text_tokens_per_segment must be >= 1, got {self.max_text_tokens_per_segment}"
            )
        if not 1 <= self.diffusion_steps <= 1000:
            raise InvalidInput(f"diffusion_steps must be between 1 and 1000, got {self.diffusion_steps}")
        if not 0 <= self.interval_silence_ms <= 10_000:
            raise InvalidInput(
                f"interval_silence_ms must be between 0 and 10000, got {self.interval_silence_ms}"
            )
        cfg_rate = _finite_number("cfg_rate", self.cfg_rate)
        if cfg_rate < 0:
            raise InvalidInput(f"cfg_rate must be >= 0 (0 turns guidance off), got {self.cfg_rate!r}")
        speed = _finite_number("speed", self.speed)
        if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
            raise InvalidInput(
                f"speed must be between {SPEED_RANGE[0]} and {SPEED_RANGE[1]}, got {self.speed!r}"
            )
        duration = _finite_number("duration", self.duration)
        if not DURATION_RANGE[0] <= duration <= DURATION_RANGE[1]:
            raise InvalidInput(
                f"duration must be between {DURATION_RANGE[0]} and {DURATION_RANGE[1]} "
                f"(1.25 = 25 % longer), got {self.duration!r}"
            )
        language = self.language
        if language is not None:
            if not isinstance(language, str) or not language.strip():
                raise InvalidInput(f"language must be a language code such as 'ja' or None, got {language!r}")
            language = language.strip().lower()
            if len(language) > MAX_LANGUAGE_CHARS or not language.replace("-", "").replace("_", "").isalnum():
                raise InvalidInput(f"language must be a language code such as 'ja', got {self.language!r}")
        object.__setattr__(self, "cfg_rate", cfg_rate)
        object.__setattr__(self, "speed", speed)
        object.__setattr__(self, "duration", duration)
        object.__setattr__(self, "language", language)

    @property
    def generation(self) -> GenerationOptions:
        """The GPT's sampling settings."""
        return GenerationOptions(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            num_beams=self.num_beams,
            length_penalty=self.length_penalty,
            max_codes=self.max_codes,
            seed=self.seed,
        )

    def replace(self, **changes: Any) -> SynthesisOptions:
        """A validated copy with some fields changed; unknown names are an error that lists the fields."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidInput(
                f"unknown synthesis option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **changes)
