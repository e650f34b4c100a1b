"""What the Ray tests' replicas run: the server's own loader, with every decode step deliberately
slowed, so that a request is certainly still running when the test acts (never a guess at how fast
the machine is). Pickled by value into the replicas (they cannot import the tests).

While the file ``HOLD`` exists in the test's signal directory, a replica also records each request
it receives (a file ``arrived-<pid>-<n>`` there) and its decode steps wait: the test sees where its
requests are and acts while they are certainly running, then removes ``HOLD`` to let them go on."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOLD = "hold"


def slow_load(step_seconds: float, signals: Path, config: Any) -> Any:
    from indextts2.engine.decode import DecodeBatch
    from indextts2.server.runner import load_synthesizer

    hold = signals / HOLD
    step = DecodeBatch.step

    def slow_step(self: DecodeBatch, *args: Any, **kwargs: Any) -> Any:
        time.sleep(step_seconds)
        while hold.exists():  # a bound on it: the test removes HOLD in a finally
            time.sleep(0.01)
        return step(self, *args, **kwargs)

    DecodeBatch.step = slow_step  # type: ignore[method-assign]
    synthesizer = load_synthesizer(config)
    stream = synthesizer.stream
    arrivals = itertools.count()

    def recorded_stream(text: str, /, **kwargs: Any) -> Iterator[Any]:
        if hold.exists():
            (signals / f"arrived-{os.getpid()}-{next(arrivals)}").touch()
        return stream(text, **kwargs)

    synthesizer.stream = recorded_stream
    return synthesizer
