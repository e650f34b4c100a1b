"""The library's front door: :class:`Synthesizer`.

    from indextts2 import Synthesizer, Emotion

    with Synthesizer.from_pretrained("IndexTeam/IndexTTS-2.5") as tts:
        voice = tts.voice("speaker.wav")                       # encoded once, cached by content
        audio = tts.synthesize("你好，世界。", voice=voice)
        audio.save("out.wav")
        for chunk in tts.stream("A long article ...", voice=voice, emotion=Emotion(text="cheerful")):
            play(chunk.samples)

Every call validates eagerly (bad text, options, emotions or audio fail before any audio is made)
and generates lazily (``stream`` yields each segment as soon as it is rendered). A Synthesizer may
be used from many threads at once: its :class:`~indextts2.engine.Engine` (started on first use)
owns the model and batches the requests of all threads together at every stage.
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import threading
from collections.abc import Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from indextts2.audio import Audio, AudioSource, load_audio
from indextts2.engine import AudioChunk, Engine, EngineConfig, EngineStats, StreamingOptions, SynthesisJob
from indextts2.engine.stats import StageObserver
from indextts2.errors import IndexTTS2Error, InvalidInput, TextTooLong
from indextts2.loader import PreparedSegments, TextPreparer, dummy_bpe_model, load_model, resolve_device
from indextts2.model.family import ModelFamily
from indextts2.model.pipeline import NoiseSource, Segment, TTSModel
from indextts2.model.voice import load_emotion_clip
from indextts2.model.voice_types import SpeakerClip, VoiceConditioning
from indextts2.options import Emotion, SynthesisOptions
from indextts2.request import (
    Request,
    check_engine_positions,
    check_model_limits,
    join_waves,
    model_segments,
    paced_counts,
    silence,
)
from indextts2.settings import DEFAULT_MODEL
from indextts2.voice import Voice
from indextts2.voice_cache import MIN_REFERENCE_SECONDS, VoiceCache, speaker_clip

if TYPE_CHECKING:
    from indextts2.store.progress import Progress
    from indextts2.text.normalize import NormalizationMode

__all__ = [
    "DEFAULT_MAX_TEXT_CHARS",
    "MIN_REFERENCE_SECONDS",
    "AudioChunk",
    "Synthesizer",
    "dummy_bpe_model",
    "resolve_device",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TEXT_CHARS = 10_000
DEFAULT_BATCH_SEGMENTS = 8  # synthesize_batch: segments decoded and rendered together


class Synthesizer:
    """IndexTTS2 text-to-speech: a loaded model, a text front end, and caches of voices.

    Build with :meth:`from_pretrained`. Use as a context manager (or call :meth:`close`) to free
    the model's memory.
    """

    def __init__(
        self,
        model: TTSModel,
        text: TextPreparer | Any,
        *,
        model_id: str,
        fingerprint: str,
        voice_cache_size: int = 64,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        engine: EngineConfig | Literal[False] | None = None,
        share_voices_with: Synthesizer | None = None,
    ) -> None:
        self._model: TTSModel | None = model
        self.family: ModelFamily = model.family
        # a bare front end (TextFrontend, MultilingualFrontend) is wrapped: one prepare() for both
        self._text = (
            text
            if isinstance(text, TextPreparer)
            else TextPreparer(text, multilingual=model.family.supports_language)
        )
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.max_text_chars = max_text_chars
        self._cache: VoiceCache = VoiceCache(
            voice_cache_size,
            model_id=model_id,
            fingerprint=fingerprint,
            family=self.family.name,
            share_voices_with=share_voices_with._cache if share_voices_with is not None else None,
        )
        # Test hook: replays recorded flow noise (see model.pipeline.NoiseSource).
        self._noise_source: NoiseSource | None = None
        if engine is not False and engine is not None and not isinstance(engine, EngineConfig):
            raise InvalidInput(f"engine must be an EngineConfig, None or False, got {type(engine).__name__}")
        self._engine_config: EngineConfig | None = None if engine is False else (engine or EngineConfig())
        self._engine: Engine | None = None
        self._lock = threading.Lock()  # the engine's start; the model itself in sequential mode

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path = DEFAULT_MODEL,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        cache_dir: str | Path | None = None,
        revision: str | None = None,
        offline: bool | None = None,
        accept_license: bool | None = None,
        voice_cache_size: int = 64,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        progress: Progress | None = None,
        engine: EngineConfig | Literal[False] | None = None,
        normalization: NormalizationMode = "corrected",
        share_voices_with: Synthesizer | None = None,
    ) -> Synthesizer:
        """Load a model once.

        Args:
            model: a model id of the store (``IndexTeam/IndexTTS-2.5``, the default, or
                ``IndexTeam/IndexTTS-2``; downloaded on first use), a local directory in either's
                official checkpoints layout, or a dummy preset (``dummy:tiny`` / ``dummy:full``,
                ``dummy:tiny-2.5`` / ``dummy:full-2.5``: random weights at test / release sizes;
                every code path runs, the output is noise).
            device: ``auto`` (CUDA > MPS > CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
            dtype: the GPT's precision (``fp16``, ``bf16``, ``fp32``); default on CUDA the official
                one (fp16 for IndexTTS-2, bf16 for IndexTTS-2.5), fp32 elsewhere. The other networks
                run in fp32, as official.
            cache_dir, revision, offline, accept_license, progress: passed to the model store
                (:func:`indextts2.store.resolve_model`).
            voice_cache_size: how many voices (and emotion clips) stay encoded in memory.
            max_text_chars: the longest text a call accepts.
            engine: the batching engine's settings (default :class:`~indextts2.engine.EngineConfig`);
                ``False`` runs every request alone, one at a time, without the engine (the
                unbatched path, a baseline for benchmarks and a fallback).
            normalization: how the text front end reads numbers: ``corrected`` (as a careful reader
                says them) or ``official`` (exactly the official front end, misreadings included;
                see :class:`~indextts2.text.TextNormalizer`).
            share_voices_with: another Synthesizer of the same model (on another device) whose
                encoded voices this one shares: a voice is encoded once for both (see
                :class:`~indextts2.pool.SynthesizerPool`).

        Raises:
            ModelNotFound, ModelFilesMissing, LicenseNotAccepted, StoreError: from the model store.
            CheckpointError, ConfigError: a file does not fit the model.
            InvalidInput: an unknown device or dtype.
        """
        loaded = load_model(
            model,
            device=device,
            dtype=dtype,
            cache_dir=cache_dir,
            revision=revision,
            offline=offline,
            accept_license=accept_license,
            progress=progress,
            max_text_chars=max_text_chars,
            normalization=normalization,
        )
        return cls(
            loaded.model,
            loaded.text,
            model_id=loaded.model_id,
            fingerprint=loaded.fingerprint,
            voice_cache_size=voice_cache_size,
            max_text_chars=max_text_chars,
            engine=engine,
            share_voices_with=share_voices_with,
        )

    def without_engine(self) -> Synthesizer:
        """A Synthesizer on the same model (shared, not copied) that runs every request alone, unbatched:
        the baseline of benchmarks. Close this one, not the copy, to free the model."""
        return Synthesizer(
            self.model,
            self._text,
            model_id=self.model_id,
            fingerprint=self.fingerprint,
            max_text_chars=self.max_text_chars,
            engine=False,
        )

    @property
    def model(self) -> TTSModel:
        if self._model is None:
            raise IndexTTS2Error("this Synthesizer is closed")
        return self._model

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def text_frontend(self) -> Any:
        """The model's text front end: ``TextFrontend`` (IndexTTS-2) or ``MultilingualFrontend`` (2.5)."""
        return self._text.frontend

    @property
    def batching(self) -> bool:
        """Whether requests go through the batching engine (False: one at a time, unbatched)."""
        return self._engine_config is not None

    @property
    def engine(self) -> Engine:
        """The batching engine (started on first use).

        Raises:
            IndexTTS2Error: the Synthesizer is closed, or was made with ``engine=False``.
        """
        model = self.model
        if self._engine_config is None:
            raise IndexTTS2Error("this Synthesizer runs without the batching engine (engine=False)")
        with self._lock:
            if self._engine is None:
                self._engine = Engine(model, self._engine_config).start()
            return self._engine

    def engine_stats(self) -> EngineStats | None:
        """The engine's batch sizes and occupancy, or None when it has not started (or is off)."""
        engine = self._engine
        return engine.stats() if engine is not None else None

    def close(self) -> None:
        """Free the model (and its GPU memory). The Synthesizer cannot be used afterwards.

        Requests still running end with :class:`~indextts2.engine.EngineClosed`.
        """
        if self._model is None:
            return
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()
        on_cuda = self._model.device.type == "cuda"
        self._model = None
        self._cache.clear()
        if on_cuda:
            torch.cuda.empty_cache()

    def warm_up(self) -> None:
        """Run one short request, so that the first client does not pay for the engine's start.

        The engine thread starts, its KV pool is allocated, CUDA graphs are captured and kernels
        chosen. ``indextts2 serve --replace`` warms the new server this way before it takes over.
        """
        from indextts2.samples import sample_voice

        options = SynthesisOptions(max_codes=24, diffusion_steps=2)
        for _ in self.stream("Hello.", voice=self.voice(sample_voice()), options=options):
            pass

    def __enter__(self) -> Synthesizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ voices

    def voice(self, audio: Audio | AudioSource, /) -> Voice:
        """Encode a speaker's reference clip once; the same recording is never encoded twice.

        Args:
            audio: an :class:`Audio`, a path, the file's bytes or a binary file object.

        Raises:
            AudioDecodeError: the file cannot be decoded.
            InvalidInput: the clip is shorter than 0.5 s or silent. Clips over 15 s are trimmed (with
                a logged warning).
        """
        clip = speaker_clip(audio if isinstance(audio, Audio) else load_audio(audio))

        def encode(clip: SpeakerClip) -> VoiceConditioning:
            if self.batching:
                return self.engine.encode_voice(clip)
            with self._lock:
                return self.model.voice_encoder.encode_voice(clip).to("cpu", torch.float32)

        return self._cache.voice(clip, encode, sample_rate=self.model.voice_encoder.mel.sample_rate)

    def load_voice(self, path: str | Path) -> Voice:
        """Read a voice file (:meth:`Voice.save`) and check that it was made for this model."""
        voice = Voice.load(path)
        self.check_voice(voice)
        return voice

    def check_voice(self, voice: Voice) -> None:
        """Refuse a voice made with another model (its conditioning would not fit this one)."""
        self._cache.check(voice)

    # ------------------------------------------------------------------------------ requests

    def segments(
        self,
        text: str,
        *,
        options: SynthesisOptions | None = None,
        streaming: StreamingOptions | None = None,
    ) -> PreparedSegments:
        """How :meth:`stream` would cut ``text`` into segments, and the language it would speak it in
        (IndexTTS-2.5: the one named in ``options``, or the one detected from the script).

        Raises:
            InvalidInput, TextTooLong, EmptyText: as :meth:`stream` would for the text and options.
        """
        options = SynthesisOptions() if options is None else options
        streaming = StreamingOptions() if streaming is None else streaming
        self.family.check_options(language=options.language, duration=options.duration, speed=options.speed)
        return self._text.prepare(
            text,
            language=options.language,
            max_tokens_per_segment=options.max_text_tokens_per_segment,
            quick_streaming_tokens=streaming.quick_streaming_tokens,
        )

    def validate(
        self,
        text: str,
        *,
        voice: Voice,
        emotion: Emotion | None = None,
        options: SynthesisOptions | None = None,
        max_text_chars: int | None = None,
        streaming: StreamingOptions | None = None,
    ) -> None:
        """Raise what :meth:`stream` would raise for these arguments, without generating anything."""
        self._prepare(
            text,
            voice=voice,
            emotion=emotion,
            options=options,
            max_text_chars=max_text_chars,
            streaming=streaming,
        )

    def segment_count(self, text: str, options: SynthesisOptions | None = None) -> int:
        """How many segments :meth:`stream` cuts ``text`` into (for progress bars; logs nothing again)."""
        options = SynthesisOptions() if options is None else options
        return self._text.count(
            text, language=options.language, max_tokens_per_segment=options.max_text_tokens_per_segment
        )

    def _prepare(
        self,
        text: str,
        *,
        voice: Voice,
        emotion: Emotion | None,
        options: SynthesisOptions | None,
        max_text_chars: int | None = None,
        streaming: StreamingOptions | None = None,
    ) -> Request:
        options = SynthesisOptions() if options is None else options
        emotion = Emotion() if emotion is None else emotion
        streaming = StreamingOptions() if streaming is None else streaming
        if not isinstance(options, SynthesisOptions):
            raise InvalidInput(f"options must be SynthesisOptions, got {type(options).__name__}")
        if not isinstance(emotion, Emotion):
            raise InvalidInput(f"emotion must be an Emotion, got {type(emotion).__name__}")
        if not isinstance(streaming, StreamingOptions):
            raise InvalidInput(f"streaming must be StreamingOptions, got {type(streaming).__name__}")
        self.check_voice(voice)
        limit = self.max_text_chars if max_text_chars is None else min(max_text_chars, self.max_text_chars)
        if isinstance(text, str) and len(text) > limit:
            raise TextTooLong(len(text), limit)
        check_model_limits(self.model, options)
        prepared = self.segments(text, options=options, streaming=streaming)
        if prepared.detected is not None:
            logger.info("no language given: speaking %s", prepared.detected)
        segments = prepared.segments
        if self._engine_config is not None:
            check_engine_positions(self.model, self._engine_config, segments, options)
        emotion_clip = None
        if emotion.audio is not None:  # audio mode
            source = emotion.audio
            emotion_clip = load_emotion_clip(source if isinstance(source, Audio) else load_audio(source))
        seed = options.seed if options.seed is not None else secrets.randbits(62)
        language_id = prepared.language_id
        return Request(segments, voice, emotion, emotion_clip, options, seed, streaming, language_id)

    def synthesize(
        self,
        text: str,
        /,
        *,
        voice: Voice,
        emotion: Emotion | None = None,
        options: SynthesisOptions | None = None,
    ) -> Audio:
        """Speak ``text`` in ``voice``: the whole audio at once (see :meth:`stream` for the arguments)."""
        chunks = list(self.stream(text, voice=voice, emotion=emotion, options=options))
        return Audio(np.concatenate([c.samples for c in chunks]), self.sample_rate)

    def stream(
        self,
        text: str,
        /,
        *,
        voice: Voice,
        emotion: Emotion | None = None,
        options: SynthesisOptions | None = None,
        streaming: StreamingOptions | None = None,
        observer: StageObserver | None = None,
    ) -> Iterator[AudioChunk]:
        """Speak ``text`` in ``voice``, one chunk per segment as soon as it is rendered.

        The text is cut into segments of at most ``options.max_text_tokens_per_segment`` tokens;
        ``options.interval_silence_ms`` of silence separates them. Closing the iterator stops the
        work before the next segment.

        Args:
            text: what to say (IndexTTS-2: Chinese, English or both; IndexTTS-2.5: also Japanese,
                Spanish, Arabic, in ``options.language`` or detected from the script).
            voice: from :meth:`voice` or :meth:`load_voice`.
            emotion: how it should sound (default: the speaker clip's own emotion).
            options: sampling, segmentation, diffusion and speed settings (default: official).
            streaming: a short first segment and chunked rendering for an earlier first chunk
                (:meth:`StreamingOptions.low_latency`); default: whole segments, the same audio as
                :meth:`synthesize`.
            observer: told of the request's time in each engine stage (``engine.StageSpan``, on the
                engine thread), for tracing; the unbatched path (``engine=False``) reports none.

        Raises:
            InvalidInput, TextTooLong, AudioDecodeError: before anything is generated.
        """
        request = self._prepare(text, voice=voice, emotion=emotion, options=options, streaming=streaming)
        return self._generate(request, observer=observer)

    def synthesize_batch(
        self,
        texts: Sequence[str],
        /,
        *,
        voice: Voice,
        emotion: Emotion | None = None,
        options: SynthesisOptions | None = None,
        batch_segments: int = DEFAULT_BATCH_SEGMENTS,
    ) -> list[Audio]:
        """Speak several texts in one voice, decoding and rendering their segments together.

        Faster than calling :meth:`synthesize` for each text, since the networks run on batches.
        With a fixed seed each text gets the audio :meth:`synthesize` would give it.
        """
        if isinstance(texts, str):
            raise InvalidInput("synthesize_batch takes a list of texts; use synthesize for one text")
        if batch_segments < 1:
            raise InvalidInput(f"batch_segments must be >= 1, got {batch_segments}")
        requests = [self._prepare(text, voice=voice, emotion=emotion, options=options) for text in texts]
        if self.batching:
            handles = [
                self.engine.submit(
                    self._job(r, parallel=batch_segments, backpressure=False, exact_codes=self._paced(r)),
                    wait=True,
                )
                for r in requests
            ]
            try:
                return [self._collect(handle) for handle in handles]
            finally:
                for handle in handles:
                    handle.cancel()
        with self._lock:
            jobs: list[tuple[Request, Segment, int]] = []
            for r in requests:
                counts = self._paced(r)
                segments = self._segments(r, counts)
                jobs.extend(zip(repeat(r), segments, counts or repeat(0)))
            waves: dict[int, list[np.ndarray]] = {id(r): [] for r in requests}
            for start in range(0, len(jobs), batch_segments):
                batch = jobs[start : start + batch_segments]
                segments = [segment for _, segment, _ in batch]
                floors = [count for _, _, count in batch]
                results = self.model.render(
                    segments, self.model.decode(segments, min_codes=floors), noise_source=self._noise_source
                )
                for (request, _, _), result in zip(batch, results, strict=True):
                    waves[id(request)].append(result.wave.numpy())
        return [self._join(r, waves[id(r)]) for r in requests]

    def _collect(self, chunks: Iterator[AudioChunk]) -> Audio:
        samples = [c.samples for c in chunks]
        return Audio(np.concatenate(samples) if samples else np.zeros(0, np.float32), self.sample_rate)

    # ------------------------------------------------------------------------------ generation

    def _silence(self, options: SynthesisOptions) -> np.ndarray:
        return silence(self.sample_rate, options)

    def _join(self, request: Request, waves: list[np.ndarray]) -> Audio:
        return join_waves(self.sample_rate, request, waves)

    def _segments(self, request: Request, exact_codes: Sequence[int] | None = None) -> list[Segment]:
        """The request's segments, ready for the GPT (see :func:`model_segments`)."""
        return model_segments(self.model, self._cache, request, exact_codes)

    def _job(
        self,
        request: Request,
        *,
        parallel: int = 1,
        backpressure: bool = True,
        exact_codes: Sequence[int] | None = None,
        observer: StageObserver | None = None,
    ) -> SynthesisJob:
        """The engine's view of a request (its conditioning runs on the engine thread; its log lines
        are emitted in the caller's context)."""

        def prepare(model: TTSModel) -> list[Segment]:
            return self._segments(request, exact_codes)

        return SynthesisJob(
            prepare=prepare,
            sample_rate=self.sample_rate,
            silence_samples=self._silence(request.options).size,
            streaming=request.streaming,
            parallel_segments=parallel,
            noise_source=self._noise_source,
            min_codes=exact_codes,
            backpressure=backpressure,
            observer=observer,
            log_context=contextvars.copy_context(),
        )

    def _paced(self, request: Request) -> list[int] | None:
        return paced_counts(self.model, request)

    def _generate(
        self,
        request: Request,
        *,
        exact_codes: Sequence[int] | None = None,
        observer: StageObserver | None = None,
    ) -> Iterator[AudioChunk]:
        """The request's chunks: through the engine, or alone (``engine=False``)."""
        if exact_codes is None:
            exact_codes = self._paced(request)
        if exact_codes is not None and len(exact_codes) != len(request.segments):
            raise InvalidInput(f"{len(exact_codes)} code counts for {len(request.segments)} segments")
        if not self.batching:
            yield from self._generate_alone(request, exact_codes)
            return
        handle = self.engine.submit(self._job(request, exact_codes=exact_codes, observer=observer), wait=True)
        try:
            yield from handle
        finally:
            handle.cancel()

    def _generate_alone(self, request: Request, exact_codes: Sequence[int] | None) -> Iterator[AudioChunk]:
        """The unbatched path: each segment decoded and rendered alone, one request at a time."""
        with self._lock:
            segments = self._segments(request, exact_codes)
        silence = self._silence(request.options)
        warned = False
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            with self._lock:
                model = self.model
                floor = None if exact_codes is None else [exact_codes[index]]
                codes = model.decode([segment], min_codes=floor)
                (result,) = model.render([segment], codes, noise_source=self._noise_source)
            if not result.stopped and not warned and exact_codes is None:
                logger.warning(
                    "segment %d reached max_codes (%d) before the model ended it; the speech may be "
                    "cut off: raise max_codes or lower max_text_tokens_per_segment",
                    index,
                    segment.generation.max_codes,
                )
                warned = True
            if index and silence.size:
                yield AudioChunk(silence, self.sample_rate, segment=index, final=False)
            yield AudioChunk(result.wave.numpy(), self.sample_rate, segment=index, final=index == last)
