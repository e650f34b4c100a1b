"""Progress of long store operations, reported without printing: the caller draws it (the CLI with Rich)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["NullProgress", "Progress", "ProgressItem"]


@dataclass(frozen=True)
class ProgressItem:
    """One file of an operation."""

    name: str
    size: int
    done: int = 0
    """Bytes already there before this run (a resumed download)."""


class Progress(Protocol):
    """What a store operation tells its caller. Calls come from the thread that runs the operation."""

    def start(self, action: str, items: Sequence[ProgressItem]) -> None:
        """The operation (``download``, ``verify``, ``import``, ``export``) is about to handle ``items``."""

    def advance(self, name: str, n_bytes: int) -> None:
        """``n_bytes`` more of item ``name`` were handled (negative: a transfer restarted)."""

    def finish(self, name: str) -> None:
        """Item ``name`` is done."""


class NullProgress:
    """Reports nothing."""

    def start(self, action: str, items: Sequence[ProgressItem]) -> None:
        pass

    def advance(self, name: str, n_bytes: int) -> None:
        pass

    def finish(self, name: str) -> None:
        pass
