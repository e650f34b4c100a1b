"""The speech service: what the routes call. It owns no HTTP and no model logic.

It resolves voices, builds GPU jobs that call the Synthesizer exactly as its contract says (on the
admission's worker threads, never on the event loop) and hands back tickets of audio chunks. The
workers only wait: the Synthesizer's engine batches the work of all of them on the GPU.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import anyio

from indextts2.audio import load_audio
from indextts2.engine.stats import StageObserver
from indextts2.errors import IndexTTS2Error, InvalidInput
from indextts2.pool import EngineStatus
from indextts2.server.admission import Admission, Ticket
from indextts2.server.config import ServerConfig
from indextts2.server.errors import NotReady, ShuttingDown
from indextts2.server.requests import SpeechRequest, build_emotion, build_options
from indextts2.server.voices import VoiceRecord, VoiceStore

__all__ = ["SpeechService"]

logger = logging.getLogger(__name__)


class SpeechService:
    """Synthesis and voices for the routes, in front of one Synthesizer behind one admission."""

    def __init__(
        self,
        *,
        config: ServerConfig,
        synthesizer: Any | None,
        admission: Admission,
        voices: VoiceStore,
    ) -> None:
        self.config = config
        self.synthesizer = synthesizer
        self.admission = admission
        self.voices = voices
        self.load_error: BaseException | None = None
        """Why loading the model failed, when it did."""
        self.draining = False
        """The server is shutting down: no new work is admitted."""

    @property
    def ready(self) -> bool:
        return self.synthesizer is not None

    @property
    def model_id(self) -> str:
        return str(getattr(self.synthesizer, "model_id", self.config.model))

    @property
    def family(self) -> Any:
        """The model's family (``ModelFamily``): the loaded one's, else the one its name tells
        without loading it; None when neither is known (a directory that is not there yet)."""
        family = getattr(self.synthesizer, "family", None)
        if family is None:
            from indextts2.loader import family_of

            try:
                family = family_of(self.config.model)
            except IndexTTS2Error:
                return None
        return family

    def engines(self) -> list[EngineStatus]:
        """Every engine behind this service: its health, outstanding requests and statistics.

        A pool (``--devices``) and a Ray deployment report their own; a single Synthesizer is one
        engine, on its device.
        """
        synthesizer = self.synthesizer
        if synthesizer is None:
            return []
        engines = getattr(synthesizer, "engines", None)
        if engines is not None:
            return list(engines())
        read = getattr(synthesizer, "engine_stats", None)
        name = str(getattr(synthesizer, "device", self.config.device))
        in_flight = self.admission.in_flight
        return [EngineStatus(name, True, None, in_flight, read() if read is not None else None)]

    @property
    def healthy(self) -> bool:
        """Some engine takes requests (False once every engine of a pool has failed)."""
        return bool(getattr(self.synthesizer, "healthy", True))

    async def drain(self, grace: float) -> None:
        """Admit nothing new; end what is still running after ``grace`` seconds (see ``app.drain``)."""
        self.draining = True
        await self.admission.drain(
            grace,
            ShuttingDown(
                "the server is shutting down and could not finish this request in time; "
                "send it again in a few seconds"
            ),
        )

    def _admitting(self) -> Any:
        """The Synthesizer, for new work (refused while shutting down: admitted work may finish)."""
        if self.draining:
            raise ShuttingDown("the server is shutting down; send the request again in a few seconds")
        return self._synthesizer()

    def _synthesizer(self) -> Any:
        if self.synthesizer is None:
            if self.load_error is not None:
                raise NotReady(f"the model could not be loaded: {self.load_error}")
            raise NotReady("the model is not loaded yet; try again when /readyz answers 200")
        return self.synthesizer

    # ---- voices (the conditioning runs on the GPU worker)

    def _encode_reference(self, data: bytes, name: str) -> Any:
        """Decode and encode a reference clip (blocking; GPU worker only).

        The clip is decoded here, within the server's limits and under its file name, so that a
        hostile header is refused before any sample is decoded and errors name the upload.
        """
        synthesizer = self._synthesizer()
        audio = load_audio(data, max_seconds=self.config.max_reference_seconds, name=name)
        return synthesizer.voice(audio)

    def _saved_voice(self, record: VoiceRecord) -> Any:
        """The conditioning of a saved voice, from memory or encoded again (GPU worker only)."""
        voice = self.voices.cached_conditioning(record.id)
        if voice is None:
            voice = self._encode_reference(self.voices.reference_bytes(record.id), record.filename)
            self.voices.remember_conditioning(record.id, voice)
        return voice

    async def create_voice(
        self, *, reference: bytes, filename: str, name: str | None
    ) -> tuple[VoiceRecord, bool]:
        """Encode a reference once and save it; returns (record, created)."""
        synthesizer = self._admitting()
        voice = await self.admission.call(
            functools.partial(self._encode_reference, reference, filename),
            timeout=self.config.request_timeout,
        )
        record, created = await anyio.to_thread.run_sync(
            functools.partial(
                self.voices.save,
                voice_id=str(voice.id),
                reference=reference,
                filename=filename,
                name=name,
                duration=float(voice.duration),
                model_id=str(getattr(voice, "model_id", synthesizer.model_id)),
            )
        )
        self.voices.remember_conditioning(record.id, voice)
        return record, created

    # ---- synthesis

    def start(self, request: SpeechRequest, *, observer: StageObserver | None = None) -> Ticket[Any]:
        """Queue a synthesis; its ticket yields the Synthesizer's AudioChunks.

        ``observer`` is told of the request's time in each engine stage (tracing).

        Quick checks (an unknown saved voice, the server not ready) raise here; the Synthesizer's own
        validation runs first thing on the worker and comes out of the ticket before any audio.

        Raises:
            VoiceNotFound, InvalidInput, Overloaded, NotReady.
        """
        synthesizer = self._admitting()
        record = self.voices.get(request.voice) if request.voice else None
        config = self.config

        def job() -> Iterator[Any]:
            if record is not None:
                voice = self._saved_voice(record)
            elif request.reference is not None:
                voice = self._encode_reference(request.reference, request.reference_name)
            else:
                raise InvalidInput("say whose voice to use: a saved voice, or a reference clip")
            synthesizer.check_voice(voice)
            emotion = build_emotion(request.emotion, max_seconds=config.max_reference_seconds)
            options = build_options({**config.default_options, **request.options})
            synthesizer.validate(
                request.text,
                voice=voice,
                emotion=emotion,
                options=options,
                max_text_chars=config.max_text_chars,
            )
            streaming = None
            if request.stream and config.low_latency_streaming:
                from indextts2.engine import StreamingOptions

                streaming = StreamingOptions.low_latency()
            traced = {"observer": observer} if observer is not None else {}
            yield from synthesizer.stream(
                request.text, voice=voice, emotion=emotion, options=options, streaming=streaming, **traced
            )

        return self.admission.submit(job, timeout=config.request_timeout)
