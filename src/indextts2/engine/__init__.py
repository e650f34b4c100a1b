"""The batching engine: the one owner of the device, shared by every request at every stage.

    from indextts2.engine import Engine, EngineConfig

Requests (:class:`SynthesisJob`) enter a bounded queue; one thread runs voice encoding, GPT
decoding (continuous batching over a KV-cache pool), the latent pass, s2mel (length-bucketed) and
BigVGAN on batches drawn from all active requests, and streams each request's audio back through
its :class:`RequestHandle`. The :class:`~indextts2.Synthesizer` owns one and the server uses it
through the Synthesizer.
"""

from indextts2.engine.config import EngineConfig, StreamingOptions
from indextts2.engine.requests import AudioChunk, RequestHandle, SynthesisJob
from indextts2.engine.scheduler import STAGES, Engine, EngineClosed, EngineStats
from indextts2.engine.stats import StageObserver, StageSpan

__all__ = [
    "STAGES",
    "AudioChunk",
    "Engine",
    "EngineClosed",
    "EngineConfig",
    "EngineStats",
    "RequestHandle",
    "StageObserver",
    "StageSpan",
    "StreamingOptions",
    "SynthesisJob",
]
