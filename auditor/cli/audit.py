"""``refuseu-audit MODEL [flags]``: the audit itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from refuseu.auditor.cli.common import EXIT_CODES, PROG, SUBCOMMANDS, exit_code, run_guarded


def audit_parser() -> Any:
    from refuseu.auditor.config import AuditConfig
    from refuseu.auditor.options import make_parser

    return make_parser(AuditConfig, PROG, "Audit a model's refusals across 12 European languages and 14 harm categories.",
                       positional=("model",),
                       epilog="Subcommands: " + ", ".join(SUBCOMMANDS) + f" (run '{PROG} SUBCOMMAND --help').\n"
                       + EXIT_CODES)


def audit_main(argv: Sequence[str]) -> int:
    parser = audit_parser()

    def go() -> int:
        import asyncio

        from refuseu.auditor.cli.terminal import print_summary, progress_bars
        from refuseu.auditor.config import AuditConfig
        from refuseu.auditor.options import parse_config
        from refuseu.auditor.runner import run_audit

        config, _ = parse_config(parser, AuditConfig, argv)
        with progress_bars(config.quiet) as progress:
            summary = asyncio.run(run_audit(config, progress))
        print_summary(summary, str(config.out), config.quiet)
        return exit_code(summary, str(config.out))

    return run_guarded(go, PROG)
