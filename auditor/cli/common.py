"""What every command shares: the program name, the exit-code contract and the guard that turns errors into
one line on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable

PROG = "refuseu-audit"
# Subcommands, lazily: "name": "module:function(argv) -> exit code".
SUBCOMMANDS: dict[str, str] = {
    "report": "refuseu.auditor.cli.report:report_command",
    "compare": "refuseu.auditor.cli.compare:compare_command",
    "suites": "refuseu.auditor.cli.suites:suites_command",
    "judge": "refuseu.auditor.cli.judge:judge_command",
    "judge-eval": "refuseu.auditor.cli.judge:judge_eval_command",
    "merge": "refuseu.auditor.cli.merge:merge_command",
}


def run_guarded(fn: Callable[[], int], prog: str = PROG) -> int:
    """Map our errors to one line on stderr and exit 2; Ctrl-C to 130 with the store intact."""
    from refuseu.auditor.errors import RefuseuError

    try:
        return fn()
    except RefuseuError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted. Everything finished so far is on disk; rerun the same command to resume.",
              file=sys.stderr)
        return 130


def exit_code(summary: dict, out_dir: str) -> int:
    errors = summary["overall"]["errors"]
    if errors:
        print(f"{PROG}: error: {errors} request(s) ended in errors (listed in {out_dir}/report.html). "
              "Rerunning the same command retries only the missing and errored records.", file=sys.stderr)
        return 2
    return 0 if summary["gate"]["passed"] else 1


