"""The ``indextts2`` command line. Thin: parse, call the library, print.

Data goes to stdout; progress, diagnostics and errors go to stderr.
"""

from indextts2.cli.app import app, main

__all__ = ["app", "main"]
