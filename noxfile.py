"""nox sessions: tests, lint, typecheck (each in a fresh virtualenv).

TORCH_SPEC picks the torch to install (default ``torch==2.13.0``, the CPU wheel on our machines).
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


@nox.session
def tests(session: nox.Session) -> None:
    session.install(TORCH_SPEC)
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests")
    session.run("ruff", "format", "--check", "src", "tests")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(TORCH_SPEC)
    session.install("-e", ".[dev]")
    session.run("mypy")
