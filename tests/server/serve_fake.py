"""``indextts2 …`` with the fake Synthesizer: the process tests' stand-in for ``indextts2 serve``.

Everything but the model is real: the CLI parses the flags, uvicorn serves, signals and the pidfile are
handled by the server's own code; only ``runner.load_synthesizer`` is replaced. When the Synthesizer
lands, ``SERVE_COMMAND`` in ``conftest.py`` becomes ``python -m indextts2`` with ``--model dummy:tiny``
and this file goes away. ``FAKE_CHUNK_DELAY`` (seconds) slows each chunk down, as a GPU would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_synth import FakeSynthesizer, install_options

install_options()

from indextts2.server import runner  # noqa: E402


def _load(config: object) -> FakeSynthesizer:
    return FakeSynthesizer(chunk_delay=float(os.environ.get("FAKE_CHUNK_DELAY", "0")))


runner.load_synthesizer = _load  # type: ignore[assignment]

if __name__ == "__main__":
    from indextts2.cli import main

    sys.argv = ["indextts2", *sys.argv[1:]]
    main()
