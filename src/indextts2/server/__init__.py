"""The shared GPU speech server: a Litestar app in front of one Synthesizer per served model.

``create_app(config)`` builds the app; ``indextts2 serve`` runs it under uvicorn. Routes: the web page
(``/``), ``/v1/tts``, the OpenAI-compatible ``/v1/audio/speech``, saved voices (``/v1/voices``),
``/v1/models``, ``/v1/info``, ``/healthz``, ``/readyz``, ``/metrics`` and the API docs (``/docs``).
"""

from indextts2.server.app import create_app
from indextts2.server.config import ModelPlacement, RateLimit, ServerConfig

__all__ = ["ModelPlacement", "RateLimit", "ServerConfig", "create_app"]
