"""``python -m indextts2.parity GOLDEN_DIR [--stage NAME ...]``: exit 0 only if every check passes."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from indextts2.errors import IndexTTS2Error
from indextts2.parity.core import STAGES, ParityReport, run_parity


def render(report: ParityReport) -> Table:
    table = Table(title="IndexTTS2 parity", show_lines=False)
    for column in ("stage", "item", "shape / count", "max abs error or mismatches", "result"):
        table.add_column(column)
    for check in report.checks:
        measure = check.measure
        if check.note and check.note not in measure:
            measure = f"{measure}; {check.note}" if measure != "-" else check.note
        result = "[green]pass[/]" if check.passed else "[bold red]FAIL[/]"
        table.add_row(check.stage, check.item, check.shape, measure, result)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m indextts2.parity",
        description="Compare every implemented stage with the official outputs in a golden directory.",
    )
    parser.add_argument("golden_dir", help="a directory in the layout of shared/goldens")
    parser.add_argument(
        "--stage",
        action="append",
        choices=STAGES,
        metavar="NAME",
        help=f"only this stage (repeatable): {', '.join(STAGES)}",
    )
    args = parser.parse_args(argv)
    out, err = Console(), Console(stderr=True)
    try:
        report = run_parity(args.golden_dir, args.stage)
    except IndexTTS2Error as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    out.print(render(report))
    failed = report.failures()
    if failed:
        out.print(f"[bold red]{len(failed)} of {len(report.checks)} checks failed[/]")
        return 1
    out.print(f"[green]all {len(report.checks)} checks passed[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
