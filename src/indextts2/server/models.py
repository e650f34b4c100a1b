"""The served models as clients see them: each one's family and what it takes.

A client (the web page, ``indextts2 say --server``, a program) learns from ``/v1/info`` which
options the model has: a language choice (IndexTTS-2.5's languages), a duration factor, and the
speaking rate every family has. Nothing here branches on a family: it reports what the family says.
"""

from __future__ import annotations

from typing import Any

from indextts2.options import DURATION_RANGE, SPEED_RANGE

__all__ = ["family_json"]


def family_json(family: Any) -> dict[str, Any] | None:
    """A model family for ``/v1/info`` (None when it is not known yet).

    ``languages``: the codes a client may offer (besides ``auto``, detection from the script), empty
    when the model takes no language; ``duration``: the duration factor's range, or None when the
    model has none; ``speed``: the speaking rate's range (every family); ``code_rate``: semantic
    codes per second of speech.
    """
    if family is None:
        return None
    return {
        "name": family.name,
        "languages": list(family.languages),
        "duration": list(DURATION_RANGE) if family.supports_duration else None,
        "speed": list(SPEED_RANGE),
        "code_rate": family.code_rate,
    }
