"""What the Ray tests' replicas run: the server's own loader, with every decode step deliberately
slowed, so that a request is certainly still running when the test acts (never a guess at how fast
the machine is). Pickled by value into the replicas (they cannot import the tests)."""

from __future__ import annotations

import time
from typing import Any


def slow_load(step_seconds: float, config: Any) -> Any:
    from indextts2.engine.decode import DecodeBatch
    from indextts2.server.runner import load_synthesizer

    step = DecodeBatch.step

    def slow_step(self: DecodeBatch, *args: Any, **kwargs: Any) -> Any:
        time.sleep(step_seconds)
        return step(self, *args, **kwargs)

    DecodeBatch.step = slow_step  # type: ignore[method-assign]
    return load_synthesizer(config)
