"""The floating-point precisions a network can run in: float32 (default, as official), bf16, fp16."""

from __future__ import annotations

import torch

from indextts2.errors import InvalidInput

__all__ = ["PRECISIONS", "resolve_precision"]

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_precision(precision: str | torch.dtype) -> torch.dtype:
    """``"fp32"`` / ``"bf16"`` / ``"fp16"`` (or the torch dtype itself) as a torch dtype.

    Raises:
        InvalidInput: any other value.
    """
    if isinstance(precision, torch.dtype):
        if precision in PRECISIONS.values():
            return precision
    elif isinstance(precision, str) and precision.lower() in PRECISIONS:
        return PRECISIONS[precision.lower()]
    raise InvalidInput(f"unsupported precision {precision!r}; use one of {', '.join(PRECISIONS)}")
