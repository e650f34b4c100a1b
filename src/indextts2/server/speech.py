"""The speech service: what the routes call. It owns no HTTP and no model logic.

It resolves the model a request names and its voice, builds GPU jobs that call that model's
Synthesizer exactly as its contract says (on the admission's worker threads, never on the event
loop) and hands back tickets of audio chunks. The workers only wait: each Synthesizer's engine
batches the work of all of them on its GPU.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import anyio

from indextts2.audio import load_audio
from indextts2.engine.stats import StageObserver
from indextts2.errors import InvalidInput
from indextts2.pool import EngineStatus
from indextts2.server.admission import Admission, Ticket
from indextts2.server.config import ServerConfig
from indextts2.server.errors import NotReady, ShuttingDown
from indextts2.server.models import ServedModel, ServedModels
from indextts2.server.requests import SpeechRequest, build_emotion, build_options
from indextts2.server.voices import VoiceRecord, VoiceStore

__all__ = ["SpeechService"]

logger = logging.getLogger(__name__)


class SpeechService:
    """Synthesis and voices for the routes, in front of the server's models behind one admission.

    Each model (``ServerConfig.placements``, the default first) has its own Synthesizer; a
    request's ``model`` chooses (:meth:`ServedModels.resolve`). The admission (queue, workers) is
    shared: the workers only wait, each model's engines batch its own work.
    """

    def __init__(
        self,
        *,
        config: ServerConfig,
        synthesizer: Any | None,
        admission: Admission,
        voices: VoiceStore,
    ) -> None:
        self.config = config
        self.models = ServedModels(config.placements, aliases=config.model_aliases)
        if synthesizer is not None:
            self.models.load(synthesizer)
        self.admission = admission
        self.voices = voices
        self.draining = False
        """The server is shutting down: no new work is admitted."""

    @property
    def synthesizer(self) -> Any | None:
        """The default model's Synthesizer (None until it is loaded)."""
        return self.models.default.synthesizer

    @synthesizer.setter
    def synthesizer(self, value: Any) -> None:
        self.models.load(value)

    @property
    def load_error(self) -> str | None:
        """Why a model could not be loaded, naming it when the server has several."""
        failed = [m for m in self.models if m.load_error is not None]
        if not failed:
            return None
        if len(self.models) == 1:
            return str(failed[0].load_error)
        return "; ".join(f"{m.name}: {m.load_error}" for m in failed)

    @property
    def ready(self) -> bool:
        """Every model is loaded."""
        return all(m.ready for m in self.models)

    @property
    def model_id(self) -> str:
        """The default model's id."""
        return self.models.default.id

    @property
    def family(self) -> Any:
        """The default model's family (see :attr:`ServedModel.family`)."""
        return self.models.default.family

    def engines(self) -> list[EngineStatus]:
        """Every engine of every model: its health, outstanding requests and statistics."""
        in_flight = self.admission.in_flight
        return [engine for model in self.models for engine in model.engines(in_flight)]

    @property
    def healthy(self) -> bool:
        """Every loaded model has an engine that takes requests (a model whose engines have all
        failed needs a restart, as a server of that model alone would)."""
        return all(m.healthy for m in self.models if m.ready)

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

    def _admitting(self, requested: str | None) -> ServedModel:
        """The model a request names, for new work (refused while shutting down: admitted work may
        finish)."""
        if self.draining:
            raise ShuttingDown("the server is shutting down; send the request again in a few seconds")
        model = self.models.resolve(requested)
        self._synthesizer(model)
        return model

    def _synthesizer(self, model: ServedModel) -> Any:
        if model.synthesizer is None:
            which = f"model {model.name}" if len(self.models) > 1 else "the model"
            if model.load_error is not None:
                raise NotReady(f"{which} could not be loaded: {model.load_error}")
            raise NotReady(f"{which} is not loaded yet; try again when /readyz answers 200")
        return model.synthesizer

    # ---- voices (the conditioning runs on the GPU worker)

    def _encode_reference(self, model: ServedModel, data: bytes, name: str) -> Any:
        """Decode and encode a reference clip for a model (blocking; GPU worker only).

        The clip is decoded here, within the server's limits and under its file name, so that a
        hostile header is refused before any sample is decoded and errors name the upload.
        """
        synthesizer = self._synthesizer(model)
        audio = load_audio(data, max_seconds=self.config.max_reference_seconds, name=name)
        return synthesizer.voice(audio)

    def _saved_voice(self, model: ServedModel, record: VoiceRecord) -> Any:
        """A saved voice's conditioning for a model, from memory or encoded again from its stored
        clip (GPU worker only): for the model it was saved with, or for another one when asked."""
        voice = self.voices.cached_conditioning(record.id, model=model.id)
        if voice is None:
            if record.model_id and record.model_id != model.id:
                logger.info(
                    "voice %s was saved for %s; encoding its stored clip for %s",
                    record.id,
                    record.model_id,
                    model.id,
                )
            voice = self._encode_reference(model, self.voices.reference_bytes(record.id), record.filename)
            self.voices.remember_conditioning(record.id, voice, model=model.id)
        return voice

    async def create_voice(
        self, *, reference: bytes, filename: str, name: str | None, model: str | None = None
    ) -> tuple[VoiceRecord, bool]:
        """Encode a reference once, for the model named (default: the first), and save it;
        returns (record, created)."""
        served = self._admitting(model)
        voice = await self.admission.call(
            functools.partial(self._encode_reference, served, reference, filename),
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
                model_id=str(getattr(voice, "model_id", served.id)),
            )
        )
        self.voices.remember_conditioning(record.id, voice, model=served.id)
        return record, created

    # ---- synthesis

    def start(self, request: SpeechRequest, *, observer: StageObserver | None = None) -> Ticket[Any]:
        """Queue a synthesis; its ticket yields the Synthesizer's AudioChunks.

        ``observer`` is told of the request's time in each engine stage (tracing).

        Quick checks (an unknown saved voice, the server not ready) raise here; the Synthesizer's own
        validation runs first thing on the worker and comes out of the ticket before any audio.

        Raises:
            ModelNotFound, VoiceNotFound, InvalidInput, Overloaded, NotReady.
        """
        model = self._admitting(request.model)
        synthesizer = self._synthesizer(model)
        self.models.check_options(model, request.options)
        record = self.voices.get(request.voice) if request.voice else None
        config = self.config

        def job() -> Iterator[Any]:
            if record is not None:
                voice = self._saved_voice(model, record)
            elif request.reference is not None:
                voice = self._encode_reference(model, request.reference, request.reference_name)
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
