"""Small subcommands of refuseu-audit that work on a stored run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from refuseu.auditor.cli.common import PROG, run_guarded


def report_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} report", description="Re-render every output of a stored run.")
    parser.add_argument("run_dir", help="A run directory (holds manifest.json).")
    parser.add_argument("--reference", help="Reference language (default: the run's).")
    parser.add_argument("--gate", help="Gate YAML to apply instead of the run's gate.")
    args = parser.parse_args(argv)

    def go() -> int:
        from refuseu.auditor.reporting.gates import GateConfig
        from refuseu.auditor.runner import finalize
        from refuseu.auditor.store import RunStore

        store = RunStore(args.run_dir)
        store.read_manifest()
        gate = GateConfig.from_file(args.gate) if args.gate else None
        summary = finalize(store, reference=args.reference, gate=gate)
        print(f"wrote {store.dir}/: summary.json, report.html, junit.xml, summary.md")
        return 0 if summary["gate"]["passed"] else 1

    return run_guarded(go, f"{PROG} report")
