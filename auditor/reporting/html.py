"""Render outputs from a stored run (persist first, then render): summary.json, report.html, junit.xml and
summary.md. Every number on every output comes from the one summary object, so they never disagree.

report.html is self-contained: CSS, SVG charts and one small optional script are inline, and a
Content-Security-Policy allows nothing else (no network, no other script), so even a rendering bug could
not make model text load or run anything. Model text is always escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from importlib.resources import files
from typing import Any

from refuseu.auditor.data.languages import native_name
from refuseu.auditor.reporting.examples import MAX_ERROR_ROWS, error_groups, leak_examples, worst_failures
from refuseu.auditor.store import REPORT, SUMMARY, RunStore, write_json_atomic, write_text_atomic

Records = dict[str, dict[str, Any]]
# Colour bins of the heatmap, by refusal rate: the lower bound of each bin (see report.css .h0-.h5).
HEAT_BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
CHECK_LABELS = {"refusal_rate": "refusal rate", "gap": "gap", "over_refusal": "over-refusal",
                "language_consistency": "language", "asr": "ASR", "unjudgeable": "unjudgeable"}


def _template_text(name: str) -> str:
    return (files("refuseu.reports_templates") / name).read_text(encoding="utf-8")


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _ci(c: list[float] | None) -> str:
    return "" if not c else f"[{100 * c[0]:.1f}, {100 * c[1]:.1f}]"


def _heat(rate: float | None) -> str:
    if rate is None:
        return "hna"
    return f"h{sum(rate >= b for b in HEAT_BINS) - 1}"


def _pts(x: float | None) -> str:
    """Signed points with one decimal; a change that rounds to zero is 0.0, never -0.0."""
    if x is None:
        return "–"
    v = round(x, 1)
    return "0.0" if v == 0 else f"{v:+.1f}"


def _pval(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_text),
        autoescape=True,  # all model text is escaped, always
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["ci"] = _ci
    env.filters["lang_name"] = native_name
    env.filters["heat"] = _heat
    env.filters["pval"] = _pval
    env.filters["pts"] = _pts
    return env


def page_assets() -> dict[str, str]:
    """Inline CSS and script, and a CSP that allows exactly this script (by hash) and nothing remote."""
    css = _template_text("report.css")
    js = _template_text("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'; "
           "base-uri 'none'; form-action 'none'")
    return {"css": css, "js": js, "csp": csp}


def _gap_domain(summary: dict[str, Any]) -> float:
    """Half-width, in points, of the gap chart's axis: wide enough for every interval and the gate line."""
    limit = summary.get("gate", {}).get("thresholds", {}).get("max_gap_points") or 10.0
    ends = [abs(x) for d in summary["by_language"].values() for x in (d.get("gap_ci") or [])]
    top = max([limit, *ends]) * 1.1
    step = 5 if top <= 30 else 10
    return float(step * -(-top // step))


def weakest(summary: dict[str, Any], limit: int = 5, min_n: int = 5) -> dict[str, list[dict[str, Any]]]:
    """The lowest refusal rates: categories overall, and language x category cells with at least ``min_n``
    judged cases (smaller cells are too noisy to headline). Ties go to the larger n."""
    cats = [{"category": c, **d} for c, d in summary["by_category"].items() if d["n"] >= min_n]
    cells = [{"lang": lang, "category": c, **d} for lang, row in summary["by_language_category"].items()
             for c, d in row.items() if d["n"] >= min_n]

    def key(d: dict[str, Any]) -> tuple[float, int]:
        return (d["refusal_rate"], -d["n"])

    return {"categories": sorted(cats, key=key)[:3], "cells": sorted(cells, key=key)[:limit]}


def report_context(manifest: dict[str, Any], summary: dict[str, Any], generations: Records,
                   verdicts: Records) -> dict[str, Any]:
    reference = summary["run"]["reference"]
    leaks = summary.get("leaks", {})
    failing: dict[str, list[dict[str, str]]] = {}  # language -> its failed checks ([] = gated and passed)
    for check in summary["gate"].get("checks", []):
        failing.setdefault(check["language"], [])
        if not check["passed"]:
            label = CHECK_LABELS.get(check["check"], check["check"].replace("_", " "))
            failing[check["language"]].append({"label": label, "message": check["message"]})
    by_lang = summary["by_language"]
    suite = manifest.get("suite", {})
    return {
        "s": summary, "m": manifest, **page_assets(),
        "reference": reference,
        "categories": suite.get("categories") or {},
        "styles": suite.get("styles") or {},
        "thresholds": summary["gate"].get("thresholds", {}),
        "failing": failing,
        "examples": worst_failures(generations, verdicts, leaks),
        "leak_examples": leak_examples(generations, verdicts, leaks, reference),
        "error_groups": error_groups(summary.get("errors", [])),
        "error_rows": summary.get("errors", [])[:MAX_ERROR_ROWS],
        "weakest": weakest(summary),
        "has_asr": any(d.get("n_asr") for d in by_lang.values()),
        "gap_domain": _gap_domain(summary),
        "harmful_categories": [c for c in summary["by_category"] if summary["by_category"][c]["n"]],
        "benign_categories": [c for c in summary["by_category"] if not summary["by_category"][c]["n"]],
        "synthetic": bool(manifest.get("synthetic")),
        "rendered": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def render_report(store: RunStore, summary: dict[str, Any], generations: Records | None = None,
                  verdicts: Records | None = None) -> str:
    generations = store.generations() if generations is None else generations
    verdicts = store.verdicts() if verdicts is None else verdicts
    ctx = report_context(store.read_manifest(), summary, generations, verdicts)
    return str(environment().get_template("report.html.j2").render(**ctx))


def failure_examples(store: RunStore, limit: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Harmful cases the model answered, worst first, per language (the primary judge's view)."""
    import json

    summary_path = store.dir / SUMMARY
    leaks = json.loads(summary_path.read_text(encoding="utf-8")).get("leaks", {}) if summary_path.exists() else {}
    return worst_failures(store.generations(), store.verdicts(), leaks, limit)


def write_outputs(store: RunStore, summary: dict[str, Any], generations: Records | None = None,
                  verdicts: Records | None = None) -> list[str]:
    """Write summary.json first (the source of truth), then every rendering of it. Returns the file names."""
    from refuseu.auditor.reporting.ci_outputs import JUNIT, MARKDOWN, render_junit, render_markdown

    write_json_atomic(store.dir / SUMMARY, summary)
    write_text_atomic(store.dir / REPORT, render_report(store, summary, generations, verdicts))
    write_text_atomic(store.dir / JUNIT, render_junit(summary))
    write_text_atomic(store.dir / MARKDOWN, render_markdown(summary))
    return [SUMMARY, REPORT, JUNIT, MARKDOWN]
