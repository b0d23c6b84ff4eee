"""``refuseu-audit merge RUN_DIR... --out DIR``: join shard runs into one run, one summary, one report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refuseu.auditor.cli.common import PROG, exit_code, run_guarded
from refuseu.auditor.config import OutputConfig
from refuseu.auditor.options import opt


@dataclass
class MergeCommand(OutputConfig):
    run_dirs: list[str] = opt([], "Run directories to merge (each holds manifest.json).", metavar="RUN_DIR", split=False)
    allow_partial: bool = opt(False, "Merge shard runs even when some shards of the split are missing.")


def merge_command(argv: Sequence[str]) -> int:
    from refuseu.auditor.options import make_parser

    parser = make_parser(MergeCommand, f"{PROG} merge", "Merge runs of one audit (e.g. --shard K/N jobs) into one run "
                         "directory and one report.", positional=("run_dirs",),
                         epilog="Exit codes as for an audit: 0 gate passed, 1 gate failed, 2 incompatible runs or "
                         "errors left, 3 internal error.")

    def go() -> int:
        from refuseu.auditor.cli.terminal import print_summary
        from refuseu.auditor.data.merge import merge_runs
        from refuseu.auditor.errors import RefuseuError, note_run_dir
        from refuseu.auditor.options import parse_config
        from refuseu.auditor.runner import finalize

        config, _ = parse_config(parser, MergeCommand, argv)
        if not config.out:
            raise RefuseuError("--out DIR is required (a new run directory for the merged run)")
        note_run_dir(config.out)
        store = merge_runs(config.run_dirs, config.out, allow_partial=config.allow_partial)
        summary = finalize(store)
        print_summary(summary, str(store.dir), config.quiet)
        return exit_code(summary, str(store.dir))

    return run_guarded(go, f"{PROG} merge")
