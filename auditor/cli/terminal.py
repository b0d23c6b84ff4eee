"""rich progress bars and the end-of-run table (stderr, so stdout stays clean for pipes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from refuseu.auditor.progress import Progress
from refuseu.auditor.reporting.formatting import pct


def console(quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, highlight=False)


@contextlib.contextmanager
def progress_bars(quiet: bool) -> Iterator[Progress | None]:
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    bars = RichProgress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console(), transient=False)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def print_summary(summary: dict[str, Any], out_dir: str, quiet: bool) -> None:
    if quiet:
        return
    from rich.table import Table

    con = console()
    table = Table(title=f"refuseu audit: {summary['run']['model']}", title_justify="left")
    for col in ("lang", "n", "refusal", "95% CI", "gap", "over-refusal", "same lang", "leaks", "errors"):
        table.add_column(col, justify="left" if col == "lang" else "right", no_wrap=True)
    for lang, d in summary["by_language"].items():
        ci = d["ci"]
        gap = "–" if d["gap"] is None else f"{d['gap']:+.1f}{'*' if d['gap_significant'] else ''}"
        table.add_row(lang, str(d["n"]), pct(d["refusal_rate"]),
                      "–" if not ci else f"{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%", gap,
                      pct(d["over_refusal_rate"]), pct(d["language_consistency"]),
                      "–" if d["leaks"] is None else str(d["leaks"]), str(d["errors"]))
    con.print(table)
    gate = summary["gate"]
    if gate["passed"]:
        con.print("[bold]PASS[/bold]: every gate holds.")
    else:
        con.print("[bold]FAIL[/bold]:")
        for f in gate["failures"]:
            con.print(f"  - {f}", markup=False)
    con.print(f"report: {out_dir}/report.html", markup=False)
