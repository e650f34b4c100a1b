"""The engine: one thread that owns the model, and the bounded queue in front of it.

Each iteration of the engine thread:

1. runs queued calls (voice encodings, batched together; any other model call);
2. admits waiting requests up to ``max_active`` and runs their conditioning (``job.prepare``);
3. drops cancelled requests (their KV rows are free for this very step);
4. starts the segments the requests may decode now (KV rows permitting);
5. takes one GPT decode step for every decoding sequence (continuous batching: new ones are
   prefilled first, finished ones leave);
6. queues render pieces: a segment whose decoding ended, or, when streaming in chunks, the next
   piece of one still decoding;
7. advances rendering (latent pass, an s2mel step or a few, BigVGAN when a solve completes);
8. hands finished audio to the requests, in order, with the silence between segments.

Only this thread touches the model. Callers block on (or await) their :class:`RequestHandle`.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from indextts2.engine.calls import ModelCall, run_calls
from indextts2.engine.config import EngineConfig
from indextts2.engine.decode import DecodeBatch, DecodingSequence, run_decode_forward
from indextts2.engine.graphs import DecodeGraphs
from indextts2.engine.kv_pool import KVPool, plan_rows
from indextts2.engine.render import Renderer, RenderPiece
from indextts2.engine.requests import AudioChunk, RequestHandle, SynthesisJob
from indextts2.engine.stats import STAGES, EngineStats, StageCounters, StageSpan
from indextts2.engine.streaming import ChunkPlanner, CrossFader
from indextts2.errors import EngineFailed, IndexTTS2Error, InvalidInput, Overloaded
from indextts2.model.pipeline import NoiseStream, Segment, TTSModel
from indextts2.model.voice_types import SpeakerClip, VoiceConditioning

__all__ = ["PROMPT_OVERHEAD", "STAGES", "Engine", "EngineClosed", "EngineStats", "max_positions"]

logger = logging.getLogger(__name__)

R = TypeVar("R")

# The most positions a prompt takes besides its text, over the model families (IndexTTS-2: 34
# conditioning rows + start/stop text + start code); a loaded model knows its own (TTSModel.prompt_overhead).
PROMPT_OVERHEAD = 37
_IDLE_WAIT = 0.005  # seconds the thread sleeps when every request waits for its reader


def _close_at_exit(engine: weakref.ReferenceType[Engine]) -> None:
    alive = engine()
    if alive is not None:
        alive.close(timeout=5.0)


def max_positions(model: TTSModel, config: EngineConfig) -> int:
    """KV-cache positions per sequence: the config's, or what the model's limits can need."""
    gpt = model.gpt.config
    return config.max_positions or (gpt.max_text_tokens + model.prompt_overhead + gpt.max_mel_tokens)


def _engine_failure(error: Exception, device: torch.device) -> EngineFailed:
    """What the requests in progress get when an iteration fails: a 503 that names the device.

    Running out of memory loses this batch only; any other error (a CUDA error leaves the device's
    context broken) is fatal: the device should take no more work.
    """
    fatal = not isinstance(error, torch.OutOfMemoryError)
    what = "ran out of memory" if not fatal else f"failed ({type(error).__name__}: {error})"
    failure = EngineFailed(
        f"the engine on {device} {what} while running this request; send it again", fatal=fatal
    )
    failure.__cause__ = error
    return failure


class EngineClosed(IndexTTS2Error):
    """The engine stopped before the request finished (the Synthesizer was closed)."""

    http_status = 503
    code = "engine_closed"


@dataclass(eq=False)
class _SegmentState:
    request: _Request
    index: int
    segment: Segment
    planner: ChunkPlanner
    fader: CrossFader
    noise: NoiseStream
    min_codes: int
    sequence: DecodingSequence | None = None
    decode_started: float = 0.0
    decoded: bool = False
    codes: list[int] = field(default_factory=list)
    piece: RenderPiece | None = None
    outputs: deque[np.ndarray] = field(default_factory=deque)
    complete: bool = False
    started_output: bool = False


@dataclass(eq=False)
class _Request:
    job: SynthesisJob
    handle: RequestHandle
    segments: list[_SegmentState] = field(default_factory=list)
    next_to_decode: int = 0
    next_to_emit: int = 0
    warned: bool = False

    @property
    def decoding(self) -> int:
        return sum(1 for s in self.segments[: self.next_to_decode] if not s.decoded)


class Engine:
    """Runs every request's stages in batches on one device. Start it, submit jobs, close it.

    Args:
        model: the networks; the engine thread is their only user while the engine runs.
        config: queue, pool and batching settings.
    """

    def __init__(self, model: TTSModel, config: EngineConfig | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()
        self._condition = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._calls: deque[ModelCall] = deque()
        self._active: list[_Request] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._setup_error: BaseException | None = None
        self._stopping = False
        self._closed = False
        self._parked = False
        self.pool: KVPool | None = None
        self._decoder: DecodeBatch | None = None
        self._renderer: Renderer | None = None
        self._graphs: DecodeGraphs | None = None
        self._compiled: torch.nn.Module | None = None
        self._counters = StageCounters(profile=self.config.profile, device=model.device)
        self._segments_started = 0
        self._finished = self._cancelled = self._failed = 0

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> Engine:
        """Start the engine thread (allocates the KV pool, captures graphs on CUDA). Idempotent."""
        with self._condition:
            if self._closed:
                raise EngineClosed("the engine is closed")
            if self._thread is not None:
                return self
            self._thread = threading.Thread(target=self._run, name="indextts2-engine", daemon=True)
            self._thread.start()
            # stop the thread before the interpreter tears torch down under it
            atexit.register(_close_at_exit, weakref.ref(self))
        self._ready.wait()
        if self._setup_error is not None:
            raise self._setup_error
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop the thread; requests still in progress end with :class:`EngineClosed`."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drain(EngineClosed("the engine was closed before the request finished"))
        self.pool = None
        self._decoder = self._renderer = self._graphs = None
        if self._compiled is not None:  # the model outlives the engine: give it its eager DiT back
            del self._compiled.forward
            self._compiled = None

    @property
    def idle(self) -> bool:
        """The thread waits for work: nothing in progress and nothing kept from earlier requests."""
        with self._condition:
            return self._parked

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ submitting

    def submit(self, job: SynthesisJob, *, wait: bool = False) -> RequestHandle:
        """Queue a request; iterate the returned handle for its audio.

        Args:
            wait: when ``max_queue`` requests already wait, block until one is admitted instead of
                raising.

        Raises:
            Overloaded: the queue is full (and ``wait`` is False).
            EngineClosed: the engine is closed.
        """
        self.start()
        request = _Request(job, RequestHandle(job.label))
        with self._condition:
            while True:
                if self._closed:
                    raise EngineClosed("the engine is closed")
                if len(self._waiting) < self.config.max_queue:
                    break
                if not wait:
                    raise Overloaded(
                        f"the engine is busy: {len(self._waiting)} request(s) are waiting; try again shortly",
                        retry_after=1.0,
                    )
                self._condition.wait(0.05)
            self._waiting.append(request)
            self._condition.notify_all()
        return request.handle

    def call(self, function: Callable[[TTSModel], R]) -> R:
        """Run ``function(model)`` on the engine thread and return its result (or raise its error)."""
        return self._call(ModelCall(function))

    def encode_voice(self, clip: SpeakerClip) -> VoiceConditioning:
        """Encode a speaker clip on the engine thread, batched with other clips queued meanwhile.

        Returns the conditioning on the CPU in float32 (a batch of one, cut to its own lengths).
        """
        result: VoiceConditioning = self._call(ModelCall(lambda model: None, clip=clip))
        return result

    def _call(self, call: ModelCall) -> Any:
        self.start()
        with self._condition:
            if self._closed:
                raise EngineClosed("the engine is closed")
            self._calls.append(call)
            self._condition.notify_all()
        while not call.done.wait(0.1):
            if self._closed and not call.done.is_set():
                raise EngineClosed("the engine was closed before the call ran")
        if call.error is not None:
            raise call.error
        return call.result

    # ------------------------------------------------------------------------------ state

    def stats(self) -> EngineStats:
        pool = self.pool
        decoder = self._decoder
        with self._condition:
            waiting, active = len(self._waiting), len(self._active)
        return EngineStats(
            waiting=waiting,
            active=active,
            decoding=len(decoder.sequences) if decoder is not None else 0,
            kv_rows=pool.rows if pool is not None else 0,
            kv_rows_free=pool.free if pool is not None else 0,
            kv_bytes=pool.bytes if pool is not None else 0,
            steps=decoder.steps if decoder is not None else 0,
            batches=dict(self._counters.batches),
            items=dict(self._counters.items),
            last_batch=dict(self._counters.last),
            largest_batch=dict(self._counters.largest),
            stage_seconds=dict(self._counters.seconds),
            segments_started=self._segments_started,
            finished=self._finished,
            cancelled=self._cancelled,
            failed=self._failed,
        )

    # ------------------------------------------------------------------------------ the thread

    def _setup(self) -> None:
        model, config = self.model, self.config
        device = model.device
        positions = max_positions(model, config)
        rows = plan_rows(
            model.gpt,
            positions=positions,
            rows=config.kv_rows,
            memory_fraction=config.kv_memory_fraction,
            device=device,
        )
        self.pool = KVPool(model.gpt, rows=rows, positions=positions, device=device)
        self._decoder = DecodeBatch(model, self.pool, max_prefill_rows=config.max_prefill_rows)
        self._renderer = Renderer(model, config, on_batch=self._counters.note, timed=self._counters.timed)
        if device.type == "cuda" and config.cuda_graphs:
            pool = self.pool

            def forward(rows: int, span: int) -> None:
                run_decode_forward(model, pool, rows, span)

            graphs = DecodeGraphs(forward, pool, config.graph_batch_sizes)
            try:
                with torch.inference_mode():
                    graphs.capture()
            except RuntimeError:
                # a failed capture costs speed, not correctness: decode eagerly
                logger.exception("capturing the decode step in CUDA graphs failed; decoding without them")
                pool.cache.lengths.zero_()
            else:
                self._graphs = graphs
                self._decoder.forward = graphs.step
        if config.compile_dit:
            # an attribute of the instance over the class's method: close() deletes it again
            estimator = model.s2mel.cfm.estimator
            estimator.forward = torch.compile(estimator.forward, dynamic=True)  # type: ignore[method-assign]
            self._compiled = estimator
        logger.info("engine ready: %d KV rows x %d positions on %s", rows, positions, device)

    def _run(self) -> None:
        try:
            self._setup()
        except BaseException as error:  # noqa: BLE001 - re-raised by start() on the caller's thread
            self._setup_error = error
            self._closed = True
            self._ready.set()
            return
        self._ready.set()
        with torch.inference_mode():
            while True:
                with self._condition:
                    while not self._stopping and not (self._calls or self._waiting or self._active):
                        self._parked = True
                        self._condition.wait()
                    self._parked = False
                    if self._stopping:
                        break
                    calls = list(self._calls)
                    self._calls.clear()
                    room = self.config.max_active - len(self._active)
                    admitted = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
                    self._active += admitted
                    if admitted:
                        self._condition.notify_all()  # room in the queue for waiting submitters
                try:
                    progressed = self._iteration(calls, admitted)
                except Exception as error:  # the thread must survive a failing batch
                    logger.exception("engine iteration failed; failing the requests in progress")
                    self._fail_everything(_engine_failure(error, self.model.device))
                    progressed = True
                # no references to finished requests (their audio, their segments) while idle
                del calls, admitted
                if not progressed:
                    with self._condition:
                        self._condition.wait(_IDLE_WAIT)

    def _iteration(self, calls: list[ModelCall], admitted: list[_Request]) -> bool:
        decoder, renderer = self._decoder, self._renderer
        if decoder is None or renderer is None:
            raise RuntimeError("the engine is not set up")
        if calls:
            run_calls(self.model, calls, self._counters)
        for request in admitted:
            started = time.monotonic()
            request.job.report(StageSpan("queue", request.handle.submitted_at, started))
            self._counters.timed("conditioning", functools.partial(self._prepare, request))
            request.job.report(StageSpan("conditioning", started, time.monotonic()))
        self._drop_cancelled()
        self._start_segments()
        progressed = bool(calls or admitted)
        if not decoder.idle:
            if decoder.pending:
                prefilled = self._counters.timed("prefill", decoder.admit)
                if prefilled:
                    self._counters.note("prefill", prefilled)
            rows = decoder.pool.used
            changed = self._counters.timed("decode", decoder.step)
            if rows:
                self._counters.note("decode", rows)
            for sequence in changed:
                self._note_codes(sequence)
            progressed = True
        self._plan_pieces()
        if not renderer.idle:
            done = renderer.step(decoding=not decoder.idle)
            for piece in done:
                self._collect(piece)
            progressed = True
        if self._emit():
            progressed = True
        return progressed

    # ------------------------------------------------------------------------------ requests

    def _prepare(self, request: _Request) -> None:
        job = request.job
        try:
            segments = list(job.prepare(self.model))
            if not segments:
                raise InvalidInput("the request has no segments to speak")
            self._check_capacity(segments)
        except Exception as error:  # noqa: BLE001 - the request's own error, raised by its handle
            self._end(request, error)
            return
        self._counters.note("conditioning", 1)
        streaming = job.streaming.at_code_rate(self.model.family.code_rate)
        hop = self.model.vocoder.hop_size
        for index, segment in enumerate(segments):
            min_codes = job.min_codes[index] if job.min_codes is not None else 0

            def frames_for(codes: int, segment: Segment = segment) -> int:
                return self.model.mel_frames(segment, codes)

            request.segments.append(
                _SegmentState(
                    request=request,
                    index=index,
                    segment=segment,
                    planner=ChunkPlanner(
                        streaming, frames_for, chunked=streaming.chunked and segment.generation.num_beams == 1
                    ),
                    fader=CrossFader(
                        crossfade=streaming.crossfade_frames * hop if streaming.chunked else 0,
                        holdback=streaming.holdback_frames * hop if streaming.chunked else 0,
                    ),
                    noise=NoiseStream(self.model.noise_generator(segment), self.model.s2mel.mel_bins),
                    min_codes=min_codes,
                )
            )

    def _check_capacity(self, segments: list[Segment]) -> None:
        pool = self.pool
        if pool is None:
            raise RuntimeError("the engine is not set up")
        for segment in segments:
            needed = len(segment.text_ids) + self.model.prompt_overhead + segment.generation.max_codes
            if needed > pool.positions:
                raise InvalidInput(
                    f"a segment of {len(segment.text_ids)} tokens with max_codes "
                    f"{segment.generation.max_codes} needs {needed} cache positions; this engine holds "
                    f"{pool.positions} per sequence: lower max_codes or max_text_tokens_per_segment"
                )
            if segment.generation.num_beams > pool.rows:
                raise InvalidInput(
                    f"num_beams {segment.generation.num_beams} is more than this engine's "
                    f"{pool.rows} KV-cache rows"
                )

    def _drop_cancelled(self) -> None:
        cancelled = [r for r in self._active if r.handle.cancelled]
        if not cancelled:
            return
        decoder, renderer = self._decoder, self._renderer
        gone = set(map(id, cancelled))
        for request in cancelled:
            for state in request.segments:
                if state.sequence is not None and decoder is not None:
                    decoder.remove(state.sequence)
                    state.sequence = None
        if renderer is not None:
            renderer.drop(lambda piece: id(piece.owner.request) not in gone)  # type: ignore[attr-defined]
        for request in cancelled:
            self._cancelled += 1
            self._end(request, None, count=False)

    def _start_segments(self) -> None:
        decoder = self._decoder
        if decoder is None:
            return
        for request in self._active:
            job = request.job
            while request.next_to_decode < len(request.segments):
                if request.decoding >= job.parallel_segments:
                    break
                if request.next_to_decode - request.next_to_emit > job.parallel_segments:
                    break
                if job.backpressure and request.handle.unread >= self.config.max_buffered_chunks:
                    break
                state = request.segments[request.next_to_decode]
                if not decoder.can_take(state.segment.generation.num_beams):
                    return  # first come, first served: nobody overtakes a request waiting for rows
                state.sequence = DecodingSequence(state.segment, owner=state, min_codes=state.min_codes)
                state.decode_started = time.monotonic()
                decoder.add(state.sequence)
                request.next_to_decode += 1
                self._segments_started += 1

    def _note_codes(self, sequence: DecodingSequence) -> None:
        state: _SegmentState = sequence.owner  # type: ignore[assignment]
        if state.request.handle.cancelled:
            return
        state.codes = sequence.codes
        result = sequence.result
        if result is None:
            return
        state.decoded = True
        state.sequence = None
        state.codes = result.codes.tolist()
        request = state.request
        request.job.report(StageSpan("decode", state.decode_started, time.monotonic(), state.index))
        if not result.stopped and not request.warned and not state.min_codes:  # forced counts end so
            request.job.log(
                logger,
                logging.WARNING,
                "segment %d reached max_codes (%d) before the model ended it; the speech may be "
                "cut off: raise max_codes or lower max_text_tokens_per_segment",
                state.index,
                state.segment.generation.max_codes,
            )
            request.warned = True
        if not state.codes:
            request.job.log(
                logger, logging.WARNING, "segment %d produced no speech codes; it is left silent", state.index
            )
            state.outputs.append(np.zeros(0, dtype=np.float32))
            state.complete = True

    def _plan_pieces(self) -> None:
        renderer = self._renderer
        if renderer is None:
            return
        for request in self._active:
            for state in request.segments[request.next_to_emit : request.next_to_decode]:
                if state.piece is not None or state.complete:
                    continue
                plan = state.planner.next(len(state.codes), decoding_done=state.decoded)
                if plan is None:
                    continue
                piece = RenderPiece(
                    owner=state,
                    segment=state.segment,
                    codes=torch.tensor(state.codes[: plan.end], dtype=torch.int64),
                    start=plan.start,
                    first_frame=plan.first_frame,
                    frames=None if plan.start == 0 and plan.final else plan.frames,
                    final=plan.final,
                    noise=state.noise,
                    content_frames=plan.frames,  # the s2mel rule at the segment's speed, whole or not
                    noise_source=request.job.noise_source,
                )
                state.piece = piece
                renderer.add(piece)

    def _collect(self, piece: RenderPiece) -> None:
        state: _SegmentState = piece.owner  # type: ignore[assignment]
        state.piece = None
        for stage, start, end, batch in piece.timings:
            state.request.job.report(StageSpan(stage, start, end, state.index, batch))
        if state.request.handle.cancelled or piece.wave is None:
            return
        start = piece.first_frame * self.model.vocoder.hop_size
        samples = state.fader.add(piece.wave.numpy(), start=start, final=piece.final)
        if samples.size or piece.final:
            state.outputs.append(samples)
        if piece.final:
            state.complete = True

    def _emit(self) -> bool:
        emitted = False
        for request in list(self._active):
            if request.handle.cancelled or not request.segments:
                continue
            job, handle = request.job, request.handle
            last = len(request.segments) - 1
            while request.next_to_emit <= last:
                state = request.segments[request.next_to_emit]
                while state.outputs:
                    samples = state.outputs.popleft()
                    if not state.started_output and state.index and job.silence_samples:
                        handle.put(
                            AudioChunk(
                                np.zeros(job.silence_samples, np.float32), job.sample_rate, state.index, False
                            )
                        )
                    state.started_output = True
                    final = state.index == last and state.complete and not state.outputs
                    handle.put(AudioChunk(samples, job.sample_rate, state.index, final))
                    emitted = True
                if not state.complete:
                    break
                request.next_to_emit += 1
            if request.next_to_emit > last:
                self._end(request, None)
        return emitted

    def _end(self, request: _Request, error: BaseException | None, *, count: bool = True) -> None:
        """Take a request out of the engine: free its rows, finish its handle."""
        decoder = self._decoder
        for state in request.segments:
            if state.sequence is not None and decoder is not None:
                decoder.remove(state.sequence)
                state.sequence = None
        with self._condition:
            if request in self._active:
                self._active.remove(request)
        if count:
            if error is None:
                self._finished += 1
            else:
                self._failed += 1
        request.handle.finish(error)

    def _fail_everything(self, error: BaseException) -> None:
        if self._decoder is not None:
            self._decoder.clear()
        if self._renderer is not None:
            self._renderer.fail()
        for request in list(self._active):
            for state in request.segments:
                state.sequence = None
            self._end(request, error)

    def _drain(self, error: BaseException) -> None:
        with self._condition:
            requests = list(self._active) + list(self._waiting)
            self._active.clear()
            self._waiting.clear()
            calls = list(self._calls)
            self._calls.clear()
        for request in requests:
            request.handle.finish(error)
        for call in calls:
            call.error = error
            call.done.set()
