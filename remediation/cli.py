"""refuseu-fix: ``refuseu-fix MODEL --audit RUN --out DIR`` fixes; ``refuseu-fix verify DIR`` re-verifies.

Thin by design: parse, call one function. Exit codes: 0 fixed and verified, 1 verification failed,
2 usage, configuration or runtime error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PROG = "refuseu-fix"


def fix_parser() -> argparse.ArgumentParser:
    from refuseu.auditor.config import add_dataclass_args
    from refuseu.remediation.config import FixConfig

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fix the refusal failures an audit found with multilingual DPO, then re-audit to prove it.",
        epilog=f"Subcommand: '{PROG} verify OUT' re-runs verification of a finished fix.\n"
        "Exit codes: 0 verified, 1 verification failed, 2 usage, config or runtime error.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_args(parser, FixConfig)
    return parser


def _log_to(quiet: bool):  # type: ignore[no-untyped-def]
    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)
    return log


def fix_main(argv: Sequence[str]) -> int:
    from refuseu.auditor.cli.common import run_guarded

    args = vars(fix_parser().parse_args(argv))

    def go() -> int:
        from refuseu.auditor.cli.terminal import progress_bars
        from refuseu.auditor.config import build_config
        from refuseu.remediation.config import FixConfig
        from refuseu.remediation.pipeline import run_fix

        explicit = set(args) - {"model"}
        # --config is TRL's DPOConfig YAML (passed through in train.py), not a file of our own defaults.
        cfg = build_config(FixConfig, args, None)
        with progress_bars(cfg.quiet) as progress:
            return run_fix(cfg, explicit, progress, _log_to(cfg.quiet))

    return run_guarded(go, PROG)


def verify_main(argv: Sequence[str]) -> int:
    from refuseu.auditor.cli.common import run_guarded

    parser = argparse.ArgumentParser(prog=f"{PROG} verify", description="Verify a finished fix again (re-audit, "
                                     "compare, preference margin, capability), from its output folder.")
    parser.add_argument("out", help="A refuseu-fix output folder (holds fix.json).")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    args = parser.parse_args(argv)

    def go() -> int:
        from pathlib import Path

        from refuseu.auditor.cli.terminal import progress_bars
        from refuseu.remediation.verify import verify

        with progress_bars(args.quiet) as progress:
            return verify(Path(args.out), progress, _log_to(args.quiet))

    return run_guarded(go, f"{PROG} verify")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "verify":
        return verify_main(argv[1:])
    return fix_main(argv)


if __name__ == "__main__":
    sys.exit(main())
