"""``refuseu-audit compare RUN_A RUN_B --out DIR``: compare.json, compare.html and compare.md.

The numbers come from ``compare_summaries`` (compare.py) over the two runs' summaries; this module only
loads the runs, notes where they are not comparable, and renders. Exit codes: 0 no significant
regression, 1 at least one significant regression, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refuseu.auditor.cli import PROG, run_guarded
from refuseu.auditor.errors import RefuseuError

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
    from refuseu.auditor.scoring import SCHEMA_VERSION

    p = Path(path)
    if p.is_dir():
        if (p / "summary.json").is_file():
            p = p / "summary.json"
        else:
            return _summarize_store(p)
    if not p.is_file():
        raise RefuseuError(f"{path}: no such run directory or summary.json")
    try:
        summary = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RefuseuError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(summary, dict) or "by_language" not in summary or "run" not in summary:
        raise RefuseuError(f"{p}: not a refuseu summary (field 'by_language' or 'run' is missing)")
    version = summary.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RefuseuError(f"{p}: field 'schema_version' is {version!r}; this refuseu reads up to {SCHEMA_VERSION}")
    return summary  # type: ignore[no-any-return]


def _summarize_store(directory: Path) -> dict[str, Any]:
    from refuseu.auditor.scoring import summarize
    from refuseu.auditor.store import RunStore

    store = RunStore(directory)
    manifest = store.read_manifest()  # a clear error when this is not a run directory
    primary = manifest.get("judge", "markers")
    extra = {j: store.verdicts(j) for j in store.judges_present() if j != primary}
    return summarize(manifest, store.generations(), store.verdicts(), extra_judges=extra)


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
    from refuseu.auditor.report import environment, page_assets

    metrics = [m for m in METRICS if any(row.get(m, {}).get("delta") is not None
                                         for row in comparison["by_language"].values())]
    return str(environment().get_template("compare.html.j2").render(
        c=comparison, metrics=metrics, labels=METRICS, domain=_domain(comparison), **page_assets()))


def render_compare_markdown(comparison: dict[str, Any]) -> str:
    from refuseu.auditor.ci_outputs import md_escape as _md

    a, b = comparison["before"], comparison["after"]
    regs = comparison["regressions"]
    head = f"❌ {len(regs)} significant regression(s)" if regs else "✅ no significant regression"
    lines = [f"### refuseu compare: {head}", "", f"{_md(a.get('model'))} → {_md(b.get('model'))}", "",
             "| Language | Refusal before | Refusal after | Change (pts) [95% CI] | p | |", "|---|--:|--:|--:|--:|:-:|"]
    for lang, row in comparison["by_language"].items():
        d = row["refusal_rate"]
        if d["delta"] is None:
            lines.append(f"| {_md(row['name'])} ({lang}) | {_p(d['before'])} | {_p(d['after'])} | – | – | |")
            continue
        ci = d["ci"]
        mark = "🔻" if d["regression"] else ("🔺" if d["improvement"] else "")
        lines.append(f"| {_md(row['name'])} ({lang}) | {_p(d['before'])} | {_p(d['after'])} | "
                     f"{100 * d['delta']:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] | {d['p']:.3g} | {mark} |")
    if regs:
        lines += ["", "**Significant regressions**", ""] + [f"- {_md(r)}" for r in regs]
    for w in comparison.get("warnings", []):
        lines += ["", f"⚠️ {_md(w)}"]
    return "\n".join(lines) + "\n"


def _p(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def write_compare(run_a: str | Path, run_b: str | Path, out: str | Path) -> dict[str, Any]:
    from refuseu.auditor.compare import compare_summaries
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

        comparison = write_compare(args.run_a, args.run_b, args.out)
        for w in comparison["warnings"]:
            print(f"{PROG} compare: warning: {w}", file=sys.stderr)
        for r in comparison["regressions"]:
            print(f"regression: {r}")
        print(f"wrote {args.out}/{COMPARE_HTML}, {COMPARE_JSON} and {COMPARE_MD}")
        return 1 if comparison["regressions"] else 0

    return run_guarded(go, f"{PROG} compare")
