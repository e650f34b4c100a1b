"""Consoles shared by the commands: data to stdout, everything else to stderr."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)
