"""``refuseu-audit MODEL [flags]``: the audit itself."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from refuseu.auditor.cli.common import PROG, SUBCOMMANDS, exit_code, run_guarded


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


def audit_main(argv: Sequence[str]) -> int:
    args = vars(audit_parser().parse_args(argv))

    def go() -> int:
        import asyncio

        from refuseu.auditor.cli.terminal import print_summary, progress_bars
        from refuseu.auditor.config import AuditConfig, build_config
        from refuseu.auditor.runner import run_audit_async

        config = build_config(AuditConfig, args, args.pop("config", None))
        with progress_bars(config.quiet) as progress:
            summary = asyncio.run(run_audit_async(config, progress))
        print_summary(summary, str(config.out), config.quiet)
        return exit_code(summary, str(config.out))

    return run_guarded(go)


