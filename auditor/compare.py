"""Compare two runs: the change per language and per category, with intervals and significance.

Pure functions over two summaries (the same objects the report and the gate read). ``refuseu-audit compare``
renders the result as compare.html / compare.json; ``refuseu-fix`` uses it for its before/after report.
"""

from __future__ import annotations

from typing import Any

from refuseu.auditor.stats import compare_proportions

ALPHA = 0.05


def _diff_ci(k1: int, n1: int, k2: int, n2: int) -> list[float] | None:
    """Newcombe's hybrid score interval for p2 - p1 (built from the two Wilson intervals)."""
    from refuseu.auditor.stats import newcombe_interval

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
