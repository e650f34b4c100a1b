"""Every device of a host: one Synthesizer (model copy and engine) per device, behind one router.

:class:`SynthesizerPool` answers the calls a :class:`~indextts2.Synthesizer` answers (``voice``,
``check_voice``, ``validate``, ``stream``, ``synthesize``), so whoever holds a Synthesizer (the
server's speech service, a program) can hold a pool instead. Each request goes to the healthy
engine with the least outstanding work: the requests routed to it that have not finished (waiting,
decoding or rendering) plus the GPT rows it decodes (a beam search weighs more than a sample), ties
to the engine chosen least recently. Voices are encoded once, on whichever engine is least busy,
and shared: their conditioning lives on the CPU and moves to the device that uses it.

An engine that fails (a device error: ``EngineFailed`` with ``fatal``) is taken out of rotation at
once and closed: its requests in flight end with :class:`~indextts2.errors.EngineFailed` (HTTP 503,
"send it again"), the other engines keep serving, and :meth:`SynthesizerPool.engines` reports it
until the process is restarted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from indextts2.errors import ConfigError, EngineFailed, InvalidInput

__all__ = ["EngineStatus", "SynthesizerPool", "parse_devices"]

logger = logging.getLogger(__name__)


def parse_devices(spec: str) -> list[str]:
    """``cuda:0,cuda:1`` / ``cpu,cpu`` / ``all`` (every CUDA device) -> a list of device names.

    Raises:
        ConfigError: an empty list, or ``all`` where there is no CUDA device.
    """
    text = spec.strip()
    if text.lower() == "all":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                "--devices all means every CUDA device, and this machine has none; "
                "name the devices instead (e.g. --devices cpu,cpu to try two engines on the CPU)"
            )
        return [f"cuda:{index}" for index in range(count)]
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices:
        raise ConfigError(f"--devices {spec!r} names no device; e.g. --devices cuda:0,cuda:1 or all")
    return devices


def engine_names(devices: Sequence[str]) -> list[str]:
    """A distinct name per engine: the device, with ``#k`` when a device is named more than once."""
    return [
        f"{device}#{devices[:index].count(device)}" if devices.count(device) > 1 else device
        for index, device in enumerate(devices)
    ]


@dataclass(frozen=True)
class EngineStatus:
    """One engine of a pool (or the only one), as ``/readyz`` and ``/metrics`` report it.

    Attributes:
        name: the device, made unique (``cuda:1``, ``cpu#0``).
        healthy: it takes requests.
        error: why it was taken out of rotation.
        outstanding: requests routed to it that have not finished.
        stats: its engine's statistics (None before its first request).
        model: the id of the model it runs (a server with several models sets it).
    """

    name: str
    healthy: bool
    error: str | None
    outstanding: int
    stats: Any
    model: str = ""


class _Member:
    def __init__(self, name: str, synthesizer: Any) -> None:
        self.name = name
        self.synthesizer = synthesizer
        self.outstanding = 0
        self.failure: str | None = None
        self.last_chosen = 0.0

    @property
    def healthy(self) -> bool:
        return self.failure is None

    def stats(self) -> Any:
        read = getattr(self.synthesizer, "engine_stats", None)
        return read() if read is not None and self.healthy else None

    def work(self) -> int:
        stats = self.stats()
        return self.outstanding + (int(getattr(stats, "decoding", 0)) if stats is not None else 0)


class SynthesizerPool:
    """Synthesizers of one model on several devices, routed by least outstanding work.

    Args:
        synthesizers: loaded Synthesizers of the same model (same fingerprint), one per device.
        names: a name per synthesizer (default: its device, made unique).
    """

    def __init__(self, synthesizers: Sequence[Any], *, names: Sequence[str] | None = None) -> None:
        if not synthesizers:
            raise ConfigError("a pool needs at least one synthesizer")
        fingerprints = {getattr(s, "fingerprint", None) for s in synthesizers}
        if len(fingerprints) != 1:
            raise ConfigError("every synthesizer of a pool must run the same model")
        names = list(names) if names is not None else engine_names([str(s.device) for s in synthesizers])
        self._members = [_Member(name, s) for name, s in zip(names, synthesizers, strict=True)]
        self._lock = threading.Lock()
        self._closing: list[threading.Thread] = []
        first = synthesizers[0]
        self.model_id: str = first.model_id
        self.fingerprint: str = first.fingerprint
        self.sample_rate: int = first.sample_rate
        self.family: Any = first.family

    @classmethod
    def from_pretrained(cls, model: str, *, devices: Sequence[str], **kwargs: Any) -> SynthesizerPool:
        """Load ``model`` once per device (each device its own copy and engine).

        ``kwargs`` go to :meth:`Synthesizer.from_pretrained` for every device. Voices are shared.

        Raises:
            what :meth:`Synthesizer.from_pretrained` raises, for the first device that fails.
        """
        from indextts2.synthesizer import Synthesizer

        loaded: list[Synthesizer] = []
        try:
            for device in devices:
                started = time.monotonic()
                loaded.append(
                    Synthesizer.from_pretrained(
                        model, device=device, share_voices_with=loaded[0] if loaded else None, **kwargs
                    )
                )
                logger.info(
                    "engine %d of %d on %s loaded in %.1f s",
                    len(loaded),
                    len(devices),
                    device,
                    time.monotonic() - started,
                )
        except BaseException:
            for synthesizer in loaded:
                synthesizer.close()
            raise
        return cls(loaded, names=engine_names(list(devices)))

    # ---- state

    def engines(self) -> list[EngineStatus]:
        """Every engine: healthy or not, its outstanding requests and statistics."""
        with self._lock:
            members = [(m, m.outstanding) for m in self._members]
        return [
            EngineStatus(m.name, m.healthy, m.failure, outstanding, m.stats()) for m, outstanding in members
        ]

    @property
    def healthy(self) -> bool:
        """At least one engine takes requests."""
        return any(m.healthy for m in self._members)

    # ---- routing

    def _any(self) -> _Member:
        member = next((m for m in self._members if m.healthy), None)
        if member is None:
            raise EngineFailed(self._all_failed_message())
        return member

    def _all_failed_message(self) -> str:
        failures = "; ".join(f"{m.name}: {m.failure}" for m in self._members)
        return f"every engine of this server has failed ({failures}); it must be restarted"

    def _choose(self) -> _Member:
        """The healthy engine with the least outstanding work; it counts the request at once."""
        with self._lock:
            healthy = [m for m in self._members if m.healthy]
            if not healthy:
                raise EngineFailed(self._all_failed_message())
            member = min(healthy, key=lambda m: (m.work(), m.last_chosen))
            member.outstanding += 1
            member.last_chosen = time.monotonic()
            return member

    def _release(self, member: _Member) -> None:
        with self._lock:
            member.outstanding -= 1

    def _fail(self, member: _Member, error: BaseException) -> None:
        """Take an engine out of rotation and close it (its waiting requests end too)."""
        with self._lock:
            if member.failure is not None:
                return
            member.failure = str(error)
        logger.error("engine %s failed and is out of rotation: %s", member.name, error)
        # closing joins the engine thread: never on a caller's thread that waits for an answer
        closing = threading.Thread(
            target=member.synthesizer.close, name=f"indextts2-close-{member.name}", daemon=True
        )
        self._closing.append(closing)
        closing.start()

    def _failed_request(self, member: _Member, error: BaseException) -> EngineFailed:
        """The 503 a request gets when its engine failed under it (or was closed for failing)."""
        if isinstance(error, EngineFailed) and error.fatal:
            self._fail(member, error)
        if isinstance(error, EngineFailed) and not error.fatal:
            return error
        return EngineFailed(
            f"the engine on {member.name} failed while running this request ({member.failure or error}); "
            "send it again: the other engines are serving"
        )

    def _is_failure(self, member: _Member, error: BaseException) -> bool:
        if isinstance(error, EngineFailed):
            return True
        # closed because it failed: what was routed there ends with EngineClosed, or finds the
        # synthesizer closed (the caller's own mistakes were refused before routing)
        return member.failure is not None and not isinstance(error, InvalidInput)

    # ---- the Synthesizer's calls

    def voice(self, audio: Any, /) -> Any:
        """Encode a reference clip on the least busy engine; every engine can use the result."""
        tried: set[str] = set()
        while True:
            member = self._choose()
            try:
                return member.synthesizer.voice(audio)
            except Exception as error:
                if not self._is_failure(member, error) or member.name in tried:
                    raise
                tried.add(member.name)
                if isinstance(error, EngineFailed) and error.fatal:
                    self._fail(member, error)
                logger.warning(
                    "encoding a voice on %s failed (%s); trying another engine", member.name, error
                )
            finally:
                self._release(member)

    def check_voice(self, voice: Any) -> None:
        self._any().synthesizer.check_voice(voice)

    def validate(self, text: str, /, **kwargs: Any) -> None:
        self._any().synthesizer.validate(text, **kwargs)

    def stream(self, text: str, /, **kwargs: Any) -> Iterator[Any]:
        """Route the request and return its chunks (validated before anything runs, as
        :meth:`Synthesizer.stream` is)."""
        member = self._choose()
        try:
            chunks = member.synthesizer.stream(text, **kwargs)
        except BaseException as error:
            self._release(member)
            if self._is_failure(member, error):
                raise self._failed_request(member, error) from error
            raise
        return _Routed(self, member, chunks)

    def synthesize(self, text: str, /, **kwargs: Any) -> Any:
        """The whole audio of one request (routed like :meth:`stream`)."""
        import numpy as np

        from indextts2.audio import Audio

        chunks = list(self.stream(text, **kwargs))
        return Audio(np.concatenate([c.samples for c in chunks]), self.sample_rate)

    def warm_up(self) -> None:
        """Warm every engine (see :meth:`Synthesizer.warm_up`)."""
        for member in self._members:
            if member.healthy:
                member.synthesizer.warm_up()

    def close(self) -> None:
        """Close every engine (requests still running end with ``EngineClosed``)."""
        for closing in self._closing:
            closing.join()
        for member in self._members:
            if member.healthy:
                member.synthesizer.close()

    def __enter__(self) -> SynthesizerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Routed(Iterator[Any]):
    """A routed request's chunks: counted on its engine until they end, fail or are closed (even
    unread), and the engine's failure turned into the 503 that names it."""

    def __init__(self, pool: SynthesizerPool, member: _Member, chunks: Iterator[Any]) -> None:
        self._pool = pool
        self._member = member
        self._chunks = chunks
        self._released = False

    def __next__(self) -> Any:
        if self._released:
            raise StopIteration
        try:
            return next(self._chunks)
        except StopIteration:
            self._release()
            raise
        except Exception as error:
            self._release()
            if self._pool._is_failure(self._member, error):
                raise self._pool._failed_request(self._member, error) from error
            raise

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._member)

    def __del__(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._member)
