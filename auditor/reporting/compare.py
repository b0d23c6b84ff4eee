"""Compare two runs: the change per language and per category, with intervals and significance.

``compare_summaries`` is pure, over two summaries (the same objects the report and the gate read).
``write_compare`` loads two runs, notes where they are not comparable, and writes compare.json,
compare.html and compare.md; ``refuseu-audit compare`` and ``refuseu-fix`` verification both call it, so
there is one compare.json schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.reporting.formatting import pct
from refuseu.auditor.reporting.stats import compare_proportions

ALPHA = 0.05


def _diff_ci(k1: int, n1: int, k2: int, n2: int) -> list[float] | None:
    """Newcombe's hybrid score interval for p2 - p1 (built from the two Wilson intervals)."""
    from refuseu.auditor.reporting.stats import newcombe_interval

    ci = newcombe_interval(k1, n1, k2, n2)
    return None if ci is None else [ci[0], ci[1]]


def _delta(a: dict[str, Any] | None, b: dict[str, Any] | None, k: str, n: str, higher_is_better: bool) -> dict[str, Any]:
    """Change of one rate between two slices (``k``: count of events, ``n``: denominator)."""
    out: dict[str, Any] = {"before": None, "after": None, "n_before": 0, "n_after": 0, "delta": None, "ci": None,
                           "p": None, "test": None, "significant": False, "regression": False, "improvement": False}
    if not a or not b:
        return out
    k1, n1, k2, n2 = a.get(k, 0), a.get(n, 0), b.get(k, 0), b.get(n, 0)
    out.update(n_before=n1, n_after=n2)
    if n1:
        out["before"] = k1 / n1
    if n2:
        out["after"] = k2 / n2
    if n1 and n2:
        p, test = compare_proportions(k1, n1, k2, n2)
        delta = k2 / n2 - k1 / n1
        sig = p is not None and p < ALPHA
        worse = delta < 0 if higher_is_better else delta > 0
        out.update(delta=delta, ci=_diff_ci(k1, n1, k2, n2), p=p, test=test, significant=sig,
                   regression=sig and worse, improvement=sig and not worse and delta != 0)
    return out


def _counts(d: dict[str, Any]) -> dict[str, Any]:
    """Counts behind a summary slice: events and denominators for each rate."""
    def back(rate: str, n: str) -> int:
        r = d.get(rate)
        return 0 if r is None else round(r * d.get(n, 0))

    return {
        "refusals": d.get("refusals", back("refusal_rate", "n")), "n": d.get("n", 0),
        "over": back("over_refusal_rate", "n_benign"), "n_benign": d.get("n_benign", 0),
        "same_lang": back("language_consistency", "n_language_checked"), "n_lang": d.get("n_language_checked", 0),
        "harmful": back("asr", "n_asr"), "n_asr": d.get("n_asr", 0),
    }


def compare_slices(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    ca, cb = (_counts(a) if a else None), (_counts(b) if b else None)
    return {
        "refusal_rate": _delta(ca, cb, "refusals", "n", higher_is_better=True),
        "over_refusal_rate": _delta(ca, cb, "over", "n_benign", higher_is_better=False),
        "language_consistency": _delta(ca, cb, "same_lang", "n_lang", higher_is_better=True),
        "asr": _delta(ca, cb, "harmful", "n_asr", higher_is_better=False),
    }


def compare_summaries(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per language, per category and overall: before, after, delta with a 95% interval, p-value, and
    whether the change is a significant regression or improvement."""
    langs = list(dict.fromkeys([*before["by_language"], *after["by_language"]]))
    cats = list(dict.fromkeys([*before["by_category"], *after["by_category"]]))
    by_language = {lg: {"name": (after["by_language"].get(lg) or before["by_language"].get(lg) or {}).get("name", lg),
                        **compare_slices(before["by_language"].get(lg), after["by_language"].get(lg))} for lg in langs}
    by_category = {c: compare_slices(before["by_category"].get(c), after["by_category"].get(c)) for c in cats}
    regressions = [f"{lg}: {metric} {_fmt(d)}" for lg, row in by_language.items()
                   for metric, d in row.items() if isinstance(d, dict) and d.get("regression")]
    regressions += [f"{c}: {metric} {_fmt(d)}" for c, row in by_category.items()
                    for metric, d in row.items() if d.get("regression")]
    return {
        "schema_version": 1,
        "before": before["run"],
        "after": after["run"],
        "overall": compare_slices(before["overall"], after["overall"]),
        "by_language": by_language,
        "by_category": by_category,
        "regressions": regressions,
    }


def _fmt(d: dict[str, Any]) -> str:
    return f"{100 * d['before']:.1f}% -> {100 * d['after']:.1f}% (p={d['p']:.3g})"


COMPARE_JSON = "compare.json"
COMPARE_HTML = "compare.html"
COMPARE_MD = "compare.md"
METRICS = {  # metric -> (label, higher is better)
    "refusal_rate": ("Refusal", True),
    "over_refusal_rate": ("Over-refusal", False),
    "language_consistency": ("Same language", True),
    "asr": ("ASR", False),
}


def load_summary(path: str | Path) -> dict[str, Any]:
    """A run directory's summary.json, or one computed from its store when it has none; or a summary file."""
    from refuseu.auditor.reporting.scoring import SCHEMA_VERSION

    p = Path(path)
    if p.is_dir():
        if (p / "summary.json").is_file():
            p = p / "summary.json"
        else:
            from refuseu.auditor.reporting.scoring import summarize_store
            from refuseu.auditor.store import RunStore

            return summarize_store(RunStore(p))
    if not p.is_file():
        raise RefuseuError(f"{path}: no such run directory or summary.json")
    try:
        from refuseu.auditor.textfiles import read_text

        summary = json.loads(read_text(p))
    except json.JSONDecodeError as exc:
        raise RefuseuError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(summary, dict) or "by_language" not in summary or "run" not in summary:
        raise RefuseuError(f"{p}: not a refuseu summary (field 'by_language' or 'run' is missing)")
    version = summary.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RefuseuError(f"{p}: field 'schema_version' is {version!r}; this refuseu reads up to {SCHEMA_VERSION}")
    return summary  # type: ignore[no-any-return]


def comparability_warnings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Differences that make a change in rates mean something other than a change in the model."""
    a, b = before["run"], after["run"]
    out = []
    if (a.get("suite") or {}).get("hash") != (b.get("suite") or {}).get("hash"):
        out.append(f"the runs used different case sets (suite {_suite(a)} vs {_suite(b)}): a change may come from the cases")
    if a.get("judge") != b.get("judge"):
        out.append(f"the primary judges differ ({a.get('judge')} vs {b.get('judge')}): a change may come from the judge")
    if a.get("reference") != b.get("reference"):
        out.append(f"the reference languages differ ({a.get('reference')} vs {b.get('reference')})")
    only_a = sorted(set(before["by_language"]) - set(after["by_language"]))
    only_b = sorted(set(after["by_language"]) - set(before["by_language"]))
    if only_a:
        out.append(f"languages only in the first run: {', '.join(only_a)}")
    if only_b:
        out.append(f"languages only in the second run: {', '.join(only_b)}")
    return out


def _suite(run: dict[str, Any]) -> str:
    s = run.get("suite") or {}
    return f"{s.get('name')} {s.get('version')} {str(s.get('hash') or '')[:12]}".strip()


def _domain(comparison: dict[str, Any]) -> float:
    ends = [abs(x) * 100 for section in ("by_language", "by_category") for row in comparison[section].values()
            for key, d in row.items() if key in METRICS and isinstance(d, dict) for x in (d.get("ci") or [])]
    top = max([10.0, *ends]) * 1.05
    step = 5 if top <= 30 else 10
    return float(step * -(-top // step))


def render_compare_html(comparison: dict[str, Any]) -> str:
    from refuseu.auditor.reporting.html import environment, page_assets

    metrics = [m for m in METRICS if any(row.get(m, {}).get("delta") is not None
                                         for row in comparison["by_language"].values())]
    return str(environment().get_template("compare.html.j2").render(
        c=comparison, metrics=metrics, labels=METRICS, domain=_domain(comparison), **page_assets()))


def render_compare_markdown(comparison: dict[str, Any]) -> str:
    from refuseu.auditor.reporting.ci_outputs import md_escape as _md

    a, b = comparison["before"], comparison["after"]
    regs = comparison["regressions"]
    head = f"❌ {len(regs)} significant regression(s)" if regs else "✅ no significant regression"
    lines = [f"### refuseu compare: {head}", "", f"{_md(a.get('model'))} → {_md(b.get('model'))}", "",
             "| Language | Refusal before | Refusal after | Change (pts) [95% CI] | p | |", "|---|--:|--:|--:|--:|:-:|"]
    for lang, row in comparison["by_language"].items():
        d = row["refusal_rate"]
        if d["delta"] is None:
            lines.append(f"| {_md(row['name'])} ({lang}) | {pct(d['before'])} | {pct(d['after'])} | – | – | |")
            continue
        ci = d["ci"]
        mark = "🔻" if d["regression"] else ("🔺" if d["improvement"] else "")
        lines.append(f"| {_md(row['name'])} ({lang}) | {pct(d['before'])} | {pct(d['after'])} | "
                     f"{100 * d['delta']:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] | {d['p']:.3g} | {mark} |")
    if regs:
        lines += ["", "**Significant regressions**", ""] + [f"- {_md(r)}" for r in regs]
    for w in comparison.get("warnings", []):
        lines += ["", f"⚠️ {_md(w)}"]
    return "\n".join(lines) + "\n"




def write_compare(run_a: str | Path, run_b: str | Path, out: str | Path) -> dict[str, Any]:
    from refuseu.auditor.reporting.compare import compare_summaries
    from refuseu.auditor.store import write_json_atomic, write_text_atomic

    before, after = load_summary(run_a), load_summary(run_b)
    comparison = compare_summaries(before, after)
    comparison["warnings"] = comparability_warnings(before, after)
    comparison["sources"] = {"before": str(run_a), "after": str(run_b)}
    out_dir = Path(out)
    write_json_atomic(out_dir / COMPARE_JSON, comparison)
    write_text_atomic(out_dir / COMPARE_HTML, render_compare_html(comparison))
    write_text_atomic(out_dir / COMPARE_MD, render_compare_markdown(comparison))
    return comparison
