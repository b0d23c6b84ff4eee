"""``refuseu-audit report RUN_DIR``: re-render every output of a stored run (persist first, render after)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refuseu.auditor.cli.common import PROG, run_guarded
from refuseu.auditor.config import ReportConfig, RunDirConfig


@dataclass
class ReportCommand(RunDirConfig, ReportConfig):
    """refuseu-audit report RUN_DIR [--reference LANG] [--gate GATE.yaml]."""


def report_command(argv: Sequence[str]) -> int:
    from refuseu.auditor.options import make_parser

    parser = make_parser(ReportCommand, f"{PROG} report", "Re-render every output of a stored run (summary.json, "
                         "report.html, junit.xml, summary.md), e.g. with another gate or reference language.",
                         positional=("run_dir",))

    def go() -> int:
        from refuseu.auditor.errors import RefuseuError, note_run_dir
        from refuseu.auditor.options import parse_config
        from refuseu.auditor.reporting.gates import GateConfig
        from refuseu.auditor.runner import finalize
        from refuseu.auditor.store import RunStore

        config, _ = parse_config(parser, ReportCommand, argv)
        if not config.run_dir:
            raise RefuseuError("RUN_DIR is required")
        store = RunStore(config.run_dir)
        store.read_manifest()
        note_run_dir(store.dir)
        gate = GateConfig.from_file(config.gate) if config.gate else None
        summary = finalize(store, reference=config.reference, gate=gate)
        print(f"wrote {store.dir}/: summary.json, report.html, junit.xml, summary.md")
        return 0 if summary["gate"]["passed"] else 1

    return run_guarded(go, f"{PROG} report")
