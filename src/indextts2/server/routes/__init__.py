"""The server's routes, one module per area: speech (``tts``), OpenAI compatibility (``openai``),
saved voices (``voices``), operations (``ops``), usage per caller (``usage``) and the web page (``web``)."""

from __future__ import annotations

from typing import Any

from indextts2.server.routes import openai, ops, tts, usage, voices, web

__all__ = ["route_handlers"]


def route_handlers() -> list[Any]:
    """Every route handler of the app."""
    return [*tts.HANDLERS, *openai.HANDLERS, *voices.HANDLERS, *ops.HANDLERS, *usage.HANDLERS, *web.HANDLERS]
