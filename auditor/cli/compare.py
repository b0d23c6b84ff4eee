"""``refuseu-audit compare RUN_A RUN_B --out DIR``: compare.json, compare.html and compare.md.
Exit codes: 0 no significant regression, 1 at least one significant regression, 2 usage or input error."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from refuseu.auditor.cli.common import PROG, run_guarded


def compare_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} compare",
        description="Compare two runs: the change per language and per category with 95%% intervals and "
        "significance. Writes compare.json, compare.html and compare.md.",
        epilog="Exit codes: 0 no significant regression, 1 a significant regression, 2 usage or input error.")
    parser.add_argument("run_a", metavar="RUN_A", help="The baseline: a run directory (or its summary.json).")
    parser.add_argument("run_b", metavar="RUN_B", help="The candidate: a run directory (or its summary.json).")
    parser.add_argument("--out", required=True, help="Directory for compare.json, compare.html and compare.md.")
    args = parser.parse_args(argv)

    def go() -> int:
        import sys

        from refuseu.auditor.reporting.compare import COMPARE_HTML, COMPARE_JSON, COMPARE_MD, write_compare

        comparison = write_compare(args.run_a, args.run_b, args.out)
        for w in comparison["warnings"]:
            print(f"{PROG} compare: warning: {w}", file=sys.stderr)
        for r in comparison["regressions"]:
            print(f"regression: {r}")
        print(f"wrote {args.out}/{COMPARE_HTML}, {COMPARE_JSON} and {COMPARE_MD}")
        return 1 if comparison["regressions"] else 0

    return run_guarded(go, f"{PROG} compare")
