"""The parity harness: golden files, checks, stage registry and the report.

A golden directory holds one model family's checkpoint (``shared/goldens``: IndexTTS-2,
``shared/goldens-2.5``: IndexTTS-2.5), recognised by its files (:func:`indextts2.store.detect_spec`).
Each family has its stage list (:data:`FAMILY_STAGES`) and its stage modules: IndexTTS-2's under
``indextts2.parity.stages``, IndexTTS-2.5's under ``indextts2.parity.stages25`` except the text
front end, whose one module (``stages.text``) serves both.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from indextts2.errors import InvalidInput

__all__ = [
    "FAMILY_STAGES",
    "STAGES",
    "Check",
    "GoldenSet",
    "ParityReport",
    "compare_exact",
    "compare_log_feature",
    "compare_tensor",
    "compare_within",
    "log_feature_tolerance",
    "run_parity",
]

logger = logging.getLogger(__name__)

# Pipeline order, over every family.
STAGES: tuple[str, ...] = ("audio", "text", "voice", "emotion", "gpt", "codec", "s2mel", "vocoder", "e2e")
# The stages of each model family (IndexTTS-2 has no codec decoder stage).
FAMILY_STAGES: dict[str, tuple[str, ...]] = {
    "IndexTTS-2": tuple(s for s in STAGES if s != "codec"),
    "IndexTTS-2.5": STAGES,
}
_STAGE_PACKAGES = {"IndexTTS-2": "indextts2.parity.stages", "IndexTTS-2.5": "indextts2.parity.stages25"}
_SHARED_STAGES = {"text": "indextts2.parity.stages"}  # one module for every family


@dataclass(frozen=True)
class Check:
    """One compared item: a tensor (max abs error against a tolerance) or a count of mismatches."""

    stage: str
    item: str
    shape: str
    passed: bool
    max_abs_error: float | None = None
    tolerance: float | None = None
    mismatches: int | None = None
    note: str = ""

    @property
    def measure(self) -> str:
        if self.max_abs_error is not None:
            return f"{self.max_abs_error:.3g} (tol {self.tolerance:g})"
        if self.mismatches is not None:
            return f"{self.mismatches} mismatch(es)"
        return self.note or "-"


class GoldenSet:
    """Read access to a golden directory. Files are loaded on first use and kept."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InvalidInput(f"golden directory {self.root} does not exist")
        if not (self.root / "checkpoint").is_dir() or not (self.root / "inputs").is_dir():
            raise InvalidInput(
                f"{self.root} is not a golden directory: it needs checkpoint/ and inputs/ "
                "(the layout of shared/goldens)"
            )
        self._tensors: dict[str, dict[str, Any]] = {}
        self._json: dict[str, Any] = {}

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @cached_property
    def family(self) -> str:
        """The model family of the golden checkpoint, recognised by its files (IndexTTS-2 by default)."""
        from indextts2.store.manifest import detect_spec

        spec = detect_spec(lambda rel: (self.checkpoint / rel).is_file())
        return spec.family if spec is not None else "IndexTTS-2"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def path(self, name: str) -> Path:
        return self.root / name

    def tensors(self, name: str) -> dict[str, Any]:
        """All tensors of ``<name>.safetensors`` (torch tensors)."""
        if name not in self._tensors:
            from safetensors.torch import load_file

            file = self.root / f"{name}.safetensors"
            if not file.is_file():
                raise InvalidInput(f"golden file {file} is missing")
            self._tensors[name] = load_file(str(file))
        return self._tensors[name]

    def json(self, name: str) -> Any:
        if name not in self._json:
            file = self.root / name
            if not file.is_file():
                raise InvalidInput(f"golden file {file} is missing")
            self._json[name] = json.loads(file.read_text(encoding="utf-8"))
        return self._json[name]

    @cached_property
    def manifest(self) -> dict[str, Any]:
        result: dict[str, Any] = self.json("manifest.json")
        return result


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return "x".join(str(int(s)) for s in shape) or "scalar"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return f"{len(value)} items"
    return "-"


def compare_tensor(stage: str, item: str, actual: Any, expected: Any, tolerance: float) -> Check:
    """Max abs error of two float tensors, which must have the same shape."""
    import torch

    actual_t = torch.as_tensor(actual).detach().to("cpu", torch.float64)
    expected_t = torch.as_tensor(expected).detach().to("cpu", torch.float64)
    if actual_t.shape != expected_t.shape:
        return Check(
            stage,
            item,
            _shape(expected_t),
            False,
            note=f"shape {_shape(actual_t)} != expected {_shape(expected_t)}",
        )
    error = float((actual_t - expected_t).abs().max()) if actual_t.numel() else 0.0
    passed = error <= tolerance  # NaN compares False, so a NaN fails
    return Check(stage, item, _shape(expected_t), passed, max_abs_error=error, tolerance=tolerance)


def compare_within(stage: str, item: str, actual: Any, expected: Any, tolerance: Any) -> Check:
    """``|actual - expected| <= tolerance`` element by element (``tolerance`` broadcasts).

    The check reports the element that comes closest to (or furthest past) its own tolerance.
    """
    import torch

    actual_t = torch.as_tensor(actual).detach().to("cpu", torch.float64)
    expected_t = torch.as_tensor(expected).detach().to("cpu", torch.float64)
    if actual_t.shape != expected_t.shape:
        return Check(
            stage,
            item,
            _shape(expected_t),
            False,
            note=f"shape {_shape(actual_t)} != expected {_shape(expected_t)}",
        )
    if not actual_t.numel():
        return Check(stage, item, _shape(expected_t), True, max_abs_error=0.0, tolerance=0.0)
    bound = torch.as_tensor(tolerance).detach().to("cpu", torch.float64).expand_as(actual_t)
    error = (actual_t - expected_t).abs()
    ratio = (error / bound.clamp(min=1e-300)).nan_to_num(nan=math.inf)  # a NaN fails
    worst = int(ratio.argmax())
    passed = bool((error <= bound).all())
    largest = float(error.max())
    return Check(
        stage,
        item,
        _shape(expected_t),
        passed,
        max_abs_error=float(error.flatten()[worst]),
        tolerance=float(bound.flatten()[worst]),
        note=f"closest to its own tolerance; largest error {largest:.3g}",
    )


FLOAT32_LOG_ROUNDING = 5 * 2.0**-24
"""Relative rounding of a log value: the reference's float32 ``log`` (2 ulp) and our one rounding."""


def log_feature_tolerance(actual: Any, value_error: Any, *, floor: float) -> Any:
    """Per-element tolerance of a feature ``log(max(v, floor))`` whose reference was computed in float32.

    Args:
        actual: our feature, computed accurately (float64, rounded once).
        value_error: a bound on ``|v_reference - v|`` in the linear domain (broadcasts), e.g. from
            ``indextts2.parity.spectral``.
        floor: the floor of the log, the same on both sides.

    Returns:
        The largest ``|log max(v_reference, floor) - actual|`` that the reference's rounding explains:
        with ``m = max(v, floor)``, ``log(1 + error / m)`` upwards and ``log(m / max(m - error,
        floor))`` downwards, plus the rounding of the log itself. Near the floor the upward side can
        be large (a tiny power in a loud frame is mostly rounding noise). A value of ours under the
        floor (a wrong floor) gets only the rounding: no reference value can be there.
    """
    import torch

    log_value = torch.as_tensor(actual).detach().to("cpu", torch.float64)
    error = torch.as_tensor(value_error).detach().to("cpu", torch.float64)
    rounding = FLOAT32_LOG_ROUNDING * log_value.abs()
    value = log_value.exp().clamp(min=floor)
    upward = torch.log1p(error / value)
    downward = torch.log(value / (value - error).clamp(min=floor))
    tolerance = torch.maximum(upward, downward) + rounding
    under_the_floor = log_value < math.log(floor) - rounding
    return torch.where(under_the_floor, rounding, tolerance)


def compare_log_feature(
    stage: str, item: str, actual: Any, expected: Any, *, value_error: Any, floor: float
) -> Check:
    """A log feature (log power, log mel) against a float32 reference: :func:`log_feature_tolerance`.

    The rule for every log-spectral feature; docs/parity.md derives it.
    """
    tolerance = log_feature_tolerance(actual, value_error, floor=floor)
    return compare_within(stage, item, actual, expected, tolerance)


def compare_exact(stage: str, item: str, actual: Any, expected: Any) -> Check:
    """Element-wise equality of integer tensors, lists or strings; reports the number of mismatches."""
    import torch

    if isinstance(expected, torch.Tensor) or isinstance(actual, torch.Tensor):
        a = torch.as_tensor(actual).detach().cpu()
        e = torch.as_tensor(expected).detach().cpu()
        if a.shape != e.shape:
            return Check(stage, item, _shape(e), False, note=f"shape {_shape(a)} != expected {_shape(e)}")
        mismatches = int((a.to(torch.int64) != e.to(torch.int64)).sum())
        return Check(stage, item, _shape(e), mismatches == 0, mismatches=mismatches)
    if isinstance(expected, str) or isinstance(actual, str):
        same = actual == expected
        note = "" if same else f"got {actual!r}, expected {expected!r}"
        return Check(stage, item, f"{len(expected)} chars", same, mismatches=0 if same else 1, note=note)
    a_list, e_list = list(actual), list(expected)
    mismatches = sum(1 for x, y in zip(a_list, e_list, strict=False) if x != y)
    mismatches += abs(len(a_list) - len(e_list))
    note = "" if mismatches == 0 else f"got {a_list!r}, expected {e_list!r}"
    return Check(stage, item, _shape(e_list), mismatches == 0, mismatches=mismatches, note=note)


@dataclass
class ParityReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def by_stage(self, stage: str) -> list[Check]:
        return [check for check in self.checks if check.stage == stage]


StageRunner = Callable[[GoldenSet], list[Check]]


def load_stage(name: str, family: str = "IndexTTS-2") -> StageRunner | None:
    """The ``run`` function of a stage of a family, or None if that stage is not implemented yet."""
    stages = FAMILY_STAGES.get(family)
    if stages is None:
        raise InvalidInput(f"unknown model family {family!r}")
    if name not in stages:
        raise InvalidInput(
            f"{family} goldens have no parity stage {name!r}; their stages are {', '.join(stages)}"
        )
    module_name = f"{_SHARED_STAGES.get(name, _STAGE_PACKAGES[family])}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    runner: StageRunner = module.run
    return runner


def run_parity(golden_dir: str | Path, stages: Iterable[str] | None = None) -> ParityReport:
    """Run the named stages (default: all of the golden family's) against a golden directory."""
    golden = GoldenSet(golden_dir)
    family_stages = FAMILY_STAGES[golden.family]
    selected = list(stages) if stages else list(family_stages)
    for name in selected:
        if name not in family_stages:
            listed = ", ".join(family_stages)
            raise InvalidInput(
                f"{golden.family} goldens have no parity stage {name!r}; their stages are {listed}"
            )
    report = ParityReport()
    for name in selected:
        runner = load_stage(name, golden.family)
        if runner is None:
            report.checks.append(Check(name, "-", "-", False, note="not implemented"))
            continue
        logger.info("parity stage %s (%s)", name, golden.family)
        report.checks.extend(runner(golden))
    return report
