"""The OpenAPI schema tells the truth: schemathesis sends generated requests to every operation of the
in-process app (a valid key, the real tiny model) and checks every answer against the schema: no
server error, every status declared, every body and Content-Type as documented.

Bounded for CI: a fixed number of examples per operation, derandomized (the same requests every run),
no example database.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from spy import FAST_OPTIONS

from indextts2.server import ServerConfig, create_app
from indextts2.server.config import JwtConfig

KEY = "fuzz-key"
EXAMPLES = 150
# Checks of how strict the API is, not of whether its answers are what the schema says: a schema
# cannot tell which bytes are audio or which voice names exist (a schema-valid request may be
# refused), and unknown query parameters are ignored (a schema-invalid one may be answered). The
# Allow header of Litestar's automatic OPTIONS answer lists only the methods of the first handler of
# a path (Litestar 2.25): it is not the schema's to fix.
EXCLUDED = [
    schemathesis.checks.positive_data_acceptance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.allow_header_conformance,
]


# The app is built here (that starts nothing) so that the schema, loaded from it, sends every request
# (schemathesis' own probes too) to it; the fixture gives it the tiny model and a voices directory.
# It takes JWTs beside the key (with scopes and an admin scope), meters usage and has a daily quota,
# so that the guard's every path is in the routes the schema describes.
HOME = Path(tempfile.mkdtemp(prefix="indextts2-fuzz-"))
VOICES = HOME / "voices"
APP = create_app(
    ServerConfig(
        voices_dir=VOICES,
        default_options=FAST_OPTIONS,
        api_keys=(KEY,),
        jwt=JwtConfig(
            secret=b"a-shared-secret-of-at-least-32-bytes!!",
            synthesis_scope="tts:speak",
            voices_scope="tts:voices",
            admin_scope="tts:admin",
        ),
        usage_db=HOME / "usage.sqlite3",
        daily_audio_quota=3600.0,
        max_text_chars=200,  # generated texts stay short: each one that is spoken takes ~0.1 s
        gpu_workers=2,
        grace_period=5.0,
    )
)
schema = schemathesis.openapi.from_dict(APP.openapi_schema.to_schema())
schema.app = APP


@pytest.fixture(scope="module", autouse=True)
def serving(tiny_synthesizer: Any) -> Iterator[None]:
    APP.state.speech.synthesizer = tiny_synthesizer
    yield
    asgi.shutdown_lifespans()  # the app's lifespan, started by the first request, ends with the module
    shutil.rmtree(HOME, ignore_errors=True)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_schema(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, excluded_checks=EXCLUDED)
