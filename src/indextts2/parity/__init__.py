"""Parity: run our implementation against a golden directory and report every difference.

A golden directory has the layout of ``shared/goldens``: ``checkpoint/`` (a model in the official
layout), ``inputs/``, and one file of recorded official outputs per stage. Each stage lives in its own
module under ``indextts2.parity.stages`` with a ``run(golden) -> list[Check]`` function; a stage whose
module does not exist yet is reported as not implemented (and fails).

    python -m indextts2.parity ../shared/goldens [--stage audio --stage text]
"""

from indextts2.parity.core import (
    STAGES,
    Check,
    GoldenSet,
    ParityReport,
    compare_exact,
    compare_tensor,
    run_parity,
)

__all__ = ["STAGES", "Check", "GoldenSet", "ParityReport", "compare_exact", "compare_tensor", "run_parity"]
