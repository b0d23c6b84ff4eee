"""Persist first, then render: summary.json (the source of truth) and every rendering of it, from the store."""

from __future__ import annotations

from typing import Any

from refuseu.auditor.reporting.ci_outputs import JUNIT, MARKDOWN, render_junit, render_markdown
from refuseu.auditor.reporting.html import render_report
from refuseu.auditor.store import REPORT, SUMMARY, RunStore, write_json_atomic, write_text_atomic

Records = dict[str, dict[str, Any]]


def write_outputs(store: RunStore, summary: dict[str, Any], generations: Records | None = None,
                  verdicts: Records | None = None) -> list[str]:
    """Write summary.json first, then the report, junit.xml and summary.md. Returns the file names."""
    write_json_atomic(store.dir / SUMMARY, summary)
    write_text_atomic(store.dir / REPORT, render_report(store, summary, generations, verdicts))
    write_text_atomic(store.dir / JUNIT, render_junit(summary))
    write_text_atomic(store.dir / MARKDOWN, render_markdown(summary))
    return [SUMMARY, REPORT, JUNIT, MARKDOWN]
