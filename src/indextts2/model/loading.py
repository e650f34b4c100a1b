"""Reading checkpoint files and loading them into modules strictly, with typed errors.

Nothing is loaded with ``strict=False``: a missing key, an unexpected key or a wrong shape raises
:class:`~indextts2.errors.CheckpointError` naming the file and the key. A caller that must skip keys
(an unused decoder, say) names them explicitly with ``ignore_unexpected``.
"""

from __future__ import annotations

import fnmatch
import logging
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from indextts2.errors import CheckpointError

__all__ = [
    "S2MEL_PARTS",
    "load_into",
    "read_s2mel_checkpoint",
    "read_safetensors",
    "read_torch_file",
    "strip_prefix",
]

logger = logging.getLogger(__name__)


def read_torch_file(path: str | Path, *, mmap: bool = True) -> Any:
    """``torch.load`` a checkpoint on the CPU, weights only, memory-mapped when the format allows.

    Memory-mapping means the file's pages back the tensors: loading a large state dict and assigning
    it to a module built on the meta device never holds two copies of the weights.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(file, "no such file")
    try:
        try:
            return torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            # Files written with the legacy (non-zip) serialization cannot be memory-mapped.
            if mmap and "mmap" in str(exc):
                return torch.load(file, map_location="cpu", weights_only=True)
            raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError) as exc:
        raise CheckpointError(file, f"not a readable torch checkpoint ({exc})") from exc


def read_safetensors(path: str | Path, *, skip: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU.

    Keys matching one of the ``skip`` glob patterns are never read (the unused layers of a large
    network stay on disk); pass the same patterns to :func:`load_into` as ``ignore_unexpected``.
    """
    from safetensors import SafetensorError, safe_open

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(file, "no such file")
    skip = tuple(skip)
    try:
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            wanted = [key for key in handle.keys() if not _matches(key, skip)]  # noqa: SIM118
            return {key: handle.get_tensor(key) for key in wanted}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(file, f"not a readable safetensors file ({exc})") from exc


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Remove ``prefix`` from every key that has it (``module.`` from DataParallel checkpoints)."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def load_into(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str | Path,
    ignore_unexpected: Iterable[str] = (),
    ignore_missing: Iterable[str] = (),
    assign: bool = False,
) -> None:
    """Load ``state_dict`` into ``module``, refusing anything that does not fit exactly.

    Args:
        module: the network, built from the config (possibly on the meta device, with ``assign=True``).
        state_dict: tensors keyed by the official names.
        source: the file the tensors came from, for error messages.
        ignore_unexpected: glob patterns of checkpoint keys we deliberately do not use.
        ignore_missing: glob patterns of module keys we deliberately do not load (recomputed buffers).
        assign: replace the module's tensors by the checkpoint's instead of copying into them.

    Raises:
        CheckpointError: naming the file and the first offending keys.
    """
    ignore_unexpected = tuple(ignore_unexpected)
    ignore_missing = tuple(ignore_missing)
    expected = module.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state_dict and not _matches(k, ignore_missing)]
    unexpected = [k for k in state_dict if k not in expected and not _matches(k, ignore_unexpected)]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise CheckpointError(source, f"missing key(s) {shown}")
    if unexpected:
        shown = ", ".join(unexpected[:5]) + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else "")
        raise CheckpointError(source, f"unexpected key(s) {shown}")
    usable = {k: v for k, v in state_dict.items() if k in expected}
    for key, tensor in usable.items():
        want = tuple(expected[key].shape)
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(source, f"key {key} holds a {type(tensor).__name__}, not a tensor")
        if tuple(tensor.shape) != want:
            raise CheckpointError(
                source, f"key {key} has shape {tuple(tensor.shape)}, the config builds {want}"
            )
    result = module.load_state_dict(usable, strict=False, assign=assign)
    leftover = [k for k in result.missing_keys if not _matches(k, ignore_missing)]
    if leftover or result.unexpected_keys:  # cannot happen after the checks above; kept as a guard
        raise CheckpointError(source, f"keys did not load: {leftover + list(result.unexpected_keys)}")
    logger.debug("loaded %d tensors from %s into %s", len(usable), source, type(module).__name__)


S2MEL_PARTS = ("cfm", "length_regulator", "gpt_layer")


def read_s2mel_checkpoint(path: str | Path, *, gpt_layer: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    """The state dicts of ``s2mel.pth``: ``{'net': {'cfm', 'length_regulator', 'gpt_layer'}}``.

    ``gpt_layer`` False: the IndexTTS-2.5 layout, which has none (one present is then an error:
    the file belongs to another model family). DataParallel ``module.`` prefixes are stripped.
    Other entries of ``net`` (training-only modules) are ignored; a missing part is an error.
    """
    data = read_torch_file(path)
    net = data.get("net") if isinstance(data, dict) else None
    if not isinstance(net, dict):
        raise CheckpointError(path, "expected a dict with a 'net' entry (the s2mel checkpoint layout)")
    parts: dict[str, dict[str, torch.Tensor]] = {}
    if not gpt_layer and "gpt_layer" in net:
        raise CheckpointError(
            path, "unexpected key net.gpt_layer: this s2mel.pth is IndexTTS-2's, the model is IndexTTS-2.5's"
        )
    for name in S2MEL_PARTS if gpt_layer else S2MEL_PARTS[:2]:
        if name not in net or not isinstance(net[name], dict):
            raise CheckpointError(path, f"missing key net.{name}")
        parts[name] = strip_prefix(net[name], "module.")
    return parts
