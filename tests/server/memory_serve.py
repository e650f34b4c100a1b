"""``indextts2 serve`` that reports the memory it holds. ``python memory_serve.py REPORT serve ARGS...``
runs the real command in this process; on SIGUSR1 it runs the cyclic garbage collector and glibc's
``malloc_trim(0)``, then writes ``<signals so far> <RSS in bytes>`` to the file REPORT.

Why the trim: RSS also counts free memory that the allocator keeps for reuse, as much as the
busiest moment so far left behind (the largest batch, the worst interleaving of threads), and that
depends on how fast the machine ran the requests. ``malloc_trim(0)`` hands every free page of every
arena back to the kernel, so the RSS after it is the memory the server holds: its working set plus
whatever it leaks. A leaked object can no longer hide in a free page that was already counted
either: re-using a trimmed page faults it in again."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
from pathlib import Path
from types import FrameType

_libc = ctypes.CDLL(None)  # glibc: the test runs on Linux (malloc_trim is missing elsewhere: it fails)
_malloc_trim = _libc.malloc_trim
_PAGE = os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    report = Path(sys.argv[1])
    signals = 0

    def trim_and_report(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        gc.collect()  # garbage waiting for the cyclic collector is not held memory
        _malloc_trim(0)
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
        partial = report.with_name(report.name + ".tmp")
        partial.write_text(f"{signals} {resident_pages * _PAGE}")
        partial.replace(report)  # the reader never sees half a line

    # Python runs the handler on the main thread, which runs uvicorn's event loop (a signal wakes the
    # loop through asyncio's wake-up file descriptor); the test signals only between rounds of requests.
    signal.signal(signal.SIGUSR1, trim_and_report)
    from indextts2.cli import main as cli_main

    sys.argv = ["indextts2", *sys.argv[2:]]
    cli_main()


if __name__ == "__main__":
    main()
