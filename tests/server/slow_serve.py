"""``indextts2 serve`` with a deliberately slow engine: every decode step sleeps first, as on a GPU
busy with longer work. ``python slow_serve.py STEP_SECONDS serve ARGS...`` runs the real command in
this process; the shutdown tests use it so that a request is certainly still running when its grace
period ends, without guessing how fast the machine is."""

from __future__ import annotations

import sys
import time
from typing import Any


def main() -> None:
    step_seconds = float(sys.argv[1])
    from indextts2.cli import main as cli_main
    from indextts2.engine.decode import DecodeBatch

    step = DecodeBatch.step

    def slow_step(self: DecodeBatch, *args: Any, **kwargs: Any) -> Any:
        time.sleep(step_seconds)
        return step(self, *args, **kwargs)

    DecodeBatch.step = slow_step  # type: ignore[method-assign]
    sys.argv = ["indextts2", *sys.argv[2:]]
    cli_main()


if __name__ == "__main__":
    main()
