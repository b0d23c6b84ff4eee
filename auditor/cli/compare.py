"""``refuseu-audit compare RUN_A RUN_B --out DIR``: compare.json, compare.html and compare.md.
Exit codes: 0 no significant regression, 1 at least one significant regression, 2 usage or input error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refuseu.auditor.cli.common import PROG, run_guarded
from refuseu.auditor.config import OutputConfig
from refuseu.auditor.options import opt


@dataclass
class CompareCommand(OutputConfig):
    run_a: str = opt("", "The baseline: a run directory (or its summary.json).", metavar="RUN_A")
    run_b: str = opt("", "The candidate: a run directory (or its summary.json).", metavar="RUN_B")


def compare_command(argv: Sequence[str]) -> int:
    from refuseu.auditor.options import make_parser

    parser = make_parser(CompareCommand, f"{PROG} compare", "Compare two runs: the change per language and per "
                         "category with 95% intervals and significance. Writes compare.json, compare.html and "
                         "compare.md to --out.", positional=("run_a", "run_b"),
                         epilog="Exit codes: 0 no significant regression, 1 a significant regression, 2 usage or "
                         "input error, 3 internal error.")

    def go() -> int:
        import sys

        from refuseu.auditor.errors import RefuseuError
        from refuseu.auditor.options import parse_config
        from refuseu.auditor.reporting.compare import COMPARE_HTML, COMPARE_JSON, COMPARE_MD, write_compare

        config, _ = parse_config(parser, CompareCommand, argv)
        if not config.out:
            raise RefuseuError("--out DIR is required (where compare.json, compare.html and compare.md go)")
        comparison = write_compare(config.run_a, config.run_b, config.out)
        for w in comparison["warnings"]:
            print(f"{PROG} compare: warning: {w}", file=sys.stderr)
        for r in comparison["regressions"]:
            print(f"regression: {r}")
        print(f"wrote {config.out}/{COMPARE_HTML}, {COMPARE_JSON} and {COMPARE_MD}")
        return 1 if comparison["regressions"] else 0

    return run_guarded(go, f"{PROG} compare")


