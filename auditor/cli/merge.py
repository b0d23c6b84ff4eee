"""``refuseu-audit merge RUN_DIR... --out DIR``: join shard runs into one run, one summary, one report."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from refuseu.auditor.cli.common import PROG, exit_code, run_guarded


def merge_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} merge",
        description="Merge runs of one audit (e.g. --shard K/N jobs) into one run directory and one report.",
        epilog="Exit codes as for an audit: 0 gate passed, 1 gate failed, 2 incompatible runs or errors left.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="Run directories to merge (each holds manifest.json).")
    parser.add_argument("--out", required=True, help="New run directory for the merged run.")
    parser.add_argument("--allow-partial", action="store_true",
                        help="Merge shard runs even when some shards of the split are missing.")
    parser.add_argument("--quiet", action="store_true", help="No summary table.")
    args = parser.parse_args(argv)

    def go() -> int:
        from refuseu.auditor.cli.terminal import print_summary
        from refuseu.auditor.data.merge import merge_runs
        from refuseu.auditor.runner import finalize

        store = merge_runs(args.run_dirs, args.out, allow_partial=args.allow_partial)
        summary = finalize(store)
        print_summary(summary, str(store.dir), args.quiet)
        return exit_code(summary, str(store.dir))

    return run_guarded(go, f"{PROG} merge")
