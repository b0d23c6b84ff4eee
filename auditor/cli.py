"""refuseu-audit: ``refuseu-audit MODEL [flags]`` runs an audit; ``refuseu-audit SUBCOMMAND ...`` runs a tool.

Thin by design: parse arguments, call one function. Heavy modules are imported inside the commands so
``--help`` stays fast. A model whose name clashes with a subcommand can be given as ``./name``.
Exit codes: 0 pass, 1 gate failed, 2 usage/config/runtime error (also: errors left in the run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

PROG = "refuseu-audit"

# Subcommands, lazily: "name": "module:function(argv) -> exit code".
SUBCOMMANDS: dict[str, str] = {
    "report": "refuseu.auditor.commands:report_command",
    "compare": "refuseu.auditor.compare_report:compare_command",
    "suites": "refuseu.auditor.suites_cmd:suites_command",
    "judge": "refuseu.auditor.judge_cmd:judge_command",
    "judge-eval": "refuseu.auditor.judge_cmd:judge_eval_command",
    "merge": "refuseu.auditor.merge:merge_command",
}


def audit_parser() -> argparse.ArgumentParser:
    from refuseu.auditor.config import AuditConfig, add_dataclass_args

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Audit a model's refusals across 12 European languages and 14 harm categories.",
        epilog="Subcommands: " + ", ".join(SUBCOMMANDS) + f" (run '{PROG} SUBCOMMAND --help').\n"
        "Exit codes: 0 pass, 1 gate failed, 2 usage, config or runtime error.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_args(parser, AuditConfig)
    parser.add_argument("--config", help="YAML file of defaults for any option above; flags override it.")
    return parser


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


def audit_main(argv: Sequence[str]) -> int:
    args = vars(audit_parser().parse_args(argv))

    def go() -> int:
        import asyncio

        from refuseu.auditor.config import AuditConfig, build_config
        from refuseu.auditor.runner import run_audit_async
        from refuseu.auditor.terminal import print_summary, progress_bars

        config = build_config(AuditConfig, args, args.pop("config", None))
        with progress_bars(config.quiet) as progress:
            summary = asyncio.run(run_audit_async(config, progress))
        print_summary(summary, str(config.out), config.quiet)
        return exit_code(summary, str(config.out))

    return run_guarded(go)


def exit_code(summary: dict, out_dir: str) -> int:
    errors = summary["overall"]["errors"]
    if errors:
        print(f"{PROG}: error: {errors} request(s) ended in errors (listed in {out_dir}/report.html). "
              "Rerunning the same command retries only the missing and errored records.", file=sys.stderr)
        return 2
    return 0 if summary["gate"]["passed"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        from refuseu.auditor.registry import load_object

        command = load_object(SUBCOMMANDS[argv[0]])
        return int(command(argv[1:]))
    return audit_main(argv)


if __name__ == "__main__":
    sys.exit(main())
