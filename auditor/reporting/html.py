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
from refuseu.auditor.reporting.formatting import interval, pct, points, pvalue
from refuseu.auditor.store import RunStore

Records = dict[str, dict[str, Any]]
# Colour bins of the heatmap, by refusal rate: the lower bound of each bin (see report.css .h0-.h5).
HEAT_BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
CHECK_LABELS = {"refusal_rate": "refusal rate", "gap": "gap", "over_refusal": "over-refusal",
                "language_consistency": "language", "asr": "ASR", "unjudgeable": "unjudgeable",
                "judged": "no judged answers", "verdicts": "missing verdicts"}


def _template_text(name: str) -> str:
    return (files("refuseu.reports_templates") / name).read_text(encoding="utf-8")


def _heat(rate: float | None) -> str:
    if rate is None:
        return "hna"
    return f"h{sum(rate >= b for b in HEAT_BINS) - 1}"


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_text),
        autoescape=True,  # all model text is escaped, always
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = pct
    env.filters["ci"] = interval
    env.filters["lang_name"] = native_name
    env.filters["heat"] = _heat
    env.filters["pval"] = pvalue
    env.filters["pts"] = points
    env.filters["share_pts"] = lambda x: points(x, scale=100)  # a difference of shares, in points
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
