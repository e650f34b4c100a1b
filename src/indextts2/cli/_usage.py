"""Usage errors (what click raises for a command line it cannot parse) as one line with a suggestion.

click's own messages are multi-line boxes whose suggestions can mislead (``No such option: --loud
(Possible options: --model)``); these name what the user typed, offer a close match only when it is
close, and end with where to read more.
"""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Any

import typer.core

__all__ = ["UsageError", "is_help_request", "usage_message"]

# Recent typer releases carry their own copy of click (typer._click) and raise its exceptions; older
# ones use click itself.
_click: Any = getattr(typer.core, "_click", None) or importlib.import_module("click")
UsageError: type[Exception] = _click.exceptions.UsageError

# How alike a typo and a real name (without its dashes) must be to be suggested (difflib's ratio,
# 0..1): "stpes" and "steps" are 0.8, "sya" and "say" 0.67, "loud" and "model" 0.44.
CLOSE_MATCH = 0.6
DEVICE_ALIASES = {"--gpu": "cuda", "--cuda": "cuda", "--cpu": "cpu"}


def is_help_request(exc: Exception) -> bool:
    """A group called without a command: click shows its help (and exits 2), which is what is wanted."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def _close(word: str, choices: list[str]) -> str | None:
    bare = {choice.lstrip("-"): choice for choice in choices}
    found = difflib.get_close_matches(word.lstrip("-"), list(bare), n=1, cutoff=CLOSE_MATCH)
    return bare[found[0]] if found else None


def _option_names(ctx: Any) -> list[str]:
    names: list[str] = []
    for param in ctx.command.get_params(ctx):
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            names.extend(param.opts + param.secondary_opts)
    return names


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def usage_message(exc: Any, command_path: str = "indextts2") -> str:
    """The one line for ``exc``: what was wrong, in the user's words, and what to do.

    ``command_path`` names the command when the exception does not carry its context.
    """
    ctx = exc.ctx
    path = ctx.command_path if ctx is not None else command_path
    hint = f"see '{path} --help'"
    if isinstance(exc, _click.exceptions.NoSuchOption) and ctx is not None:
        typed = exc.option_name
        options = _option_names(ctx)
        match = _close(typed, options)
        if typed in DEVICE_ALIASES and "--device" in options:  # serve's aliases, typed elsewhere
            match = f"--device {DEVICE_ALIASES[typed]}"
        suggestion = f"did you mean {match}? ({hint})" if match else hint
        return f"{path} has no option {typed}; {suggestion}"
    errors = _click.exceptions
    if isinstance(exc, errors.BadParameter | errors.MissingParameter | errors.BadOptionUsage):
        return f"{_one_line(exc.format_message())}; {hint}"
    message = _one_line(exc.format_message())
    unknown = re.match(r"No such command '([^']+)'", message)
    if unknown is not None and ctx is not None and hasattr(ctx.command, "list_commands"):
        commands = sorted(ctx.command.list_commands(ctx))
        match = _close(unknown.group(1), commands)
        offer = f"did you mean '{match}'?" if match else f"the commands are {', '.join(commands)}"
        return f"{path} has no command '{unknown.group(1)}'; {offer} ({hint})"
    extra = re.fullmatch(r"Got unexpected extra argument(?:s|\(s\))? \((.+)\)", message)
    if extra is not None:
        quote = ""
        if ctx is not None and any(p.param_type_name == "argument" for p in ctx.command.get_params(ctx)):
            quote = "; put text with spaces in quotes"
        return f"{path} got more arguments than it takes: {extra.group(1)}{quote} ({hint})"
    return f"{message}; {hint}"
