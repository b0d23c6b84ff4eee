"""What every command shares: the program name, the exit-code contract, and the guard that turns every way a
command can end into exactly one of those codes.

Exit codes, for CI: 0 every gate passed; 1 a gate failed (a safety result); 2 usage, configuration, input or
runtime error (also: requests that still failed after retries); 3 refuseu itself crashed (an internal error:
never a safety result; the traceback is in RUN/crash.log); 130 interrupted.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path

PROG = "refuseu-audit"
EXIT_CODES = ("Exit codes: 0 every gate passed, 1 a gate failed, 2 usage, configuration, input or runtime error, "
              "3 internal error (a crash, not a safety result; see RUN/crash.log), 130 interrupted.")
# Subcommands, lazily: "name": "module:function(argv) -> exit code".
SUBCOMMANDS: dict[str, str] = {
    "report": "refuseu.auditor.cli.report:report_command",
    "compare": "refuseu.auditor.cli.compare:compare_command",
    "suites": "refuseu.auditor.cli.suites:suites_command",
    "judge": "refuseu.auditor.cli.judge:judge_command",
    "judge-eval": "refuseu.auditor.cli.judge:judge_eval_command",
    "judge-train": "refuseu.auditor.cli.judge_train:judge_train_command",
    "merge": "refuseu.auditor.cli.merge:merge_command",
}
CRASH_LOG = "crash.log"


def run_guarded(fn: Callable[[], int], prog: str = PROG, run_dir: Callable[[], str | Path | None] | None = None) -> int:
    """Run a command. Our own errors become one line and exit 2; Ctrl-C exits 130 with the store intact; any
    other exception is a crash: one line naming it and exit 3, with the traceback in the run directory's
    crash.log (or on stderr when there is no run directory yet)."""
    from refuseu.auditor.errors import RefuseuError, current_run_dir

    try:
        return fn()
    except RefuseuError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted. Everything finished so far is on disk; rerun the same command to resume.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `refuseu-audit ... | head`: the reader has what it wanted
        return 0
    except Exception as exc:  # noqa: BLE001 - the whole point: no crash may look like a gate result
        where = (run_dir() if run_dir else None) or current_run_dir()
        text = "".join(traceback.format_exception(exc))
        log = _write_crash_log(Path(where), text) if where else None
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        name = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
        if log is None:
            sys.stderr.write(text)
        print(f"{prog}: internal error (exit 3, not a safety result): {name}: {first}"
              + (f"; run directory {where}; traceback in {log}" if log else "; traceback above"), file=sys.stderr)
        return 3


def _write_crash_log(directory: Path, text: str) -> Path | None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CRASH_LOG
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        return path
    except OSError:
        return None


def exit_code(summary: dict, out_dir: str) -> int:
    errors = summary["overall"]["errors"]
    missing = summary["overall"].get("missing_verdicts", 0)
    if errors:
        print(f"{PROG}: error: {errors} request(s) ended in errors (listed in {out_dir}/report.html). "
              "Rerunning the same command retries only the missing and errored records.", file=sys.stderr)
        return 2
    if missing:
        print(f"{PROG}: error: {missing} answer(s) have no verdict (judging did not finish; listed in "
              f"{out_dir}/summary.json). Rerunning the same command judges only those.", file=sys.stderr)
        return 2
    return 0 if summary["gate"]["passed"] else 1
