"""CI renderings of a summary: junit.xml (one testcase per language and per gate check) and summary.md
(a compact table for $GITHUB_STEP_SUMMARY or a PR comment). Both read only the summary object."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from refuseu.auditor.reporting.formatting import pct, points

JUNIT = "junit.xml"
MARKDOWN = "summary.md"
MAX_MD_FAILURES = 30  # failing gates listed in summary.md; the rest are counted

# Characters XML 1.0 cannot carry at all (model or server text may hold them): dropped from junit.xml.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: Any) -> str:
    return _XML_INVALID.sub("", str(text))


def _lang_line(lang: str, d: dict[str, Any]) -> str:
    ci = d.get("ci")
    parts = [f"{d['name']} ({lang}): refusal {pct(d['refusal_rate'])}"
             + (f" [95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f}]" if ci else "") + f" n={d['n']}"]
    corr = d.get("corrected")
    if corr:
        parts.append(f"judge-corrected {pct(corr['rate'])} [95% CI {100 * corr['ci'][0]:.1f}-{100 * corr['ci'][1]:.1f}]")
    if d.get("gap") is not None:
        parts.append(f"gap {d['gap']:+.1f} pts (p={d['gap_p']:.3g}, {d['gap_test']})")
    parts.append(f"over-refusal {pct(d['over_refusal_rate'])} n={d['n_benign']}")
    parts.append(f"same language {pct(d['language_consistency'])}")
    if d.get("leaks") is not None:
        parts.append(f"leaks {d['leaks']}/{d['n_parallel']}")
    parts.append(f"errors {d['errors']}, unjudgeable {d['unjudgeable']}")
    return "; ".join(parts)


def _case(parent: ET.Element, classname: str, name: str, *, failures: list[str] | None = None,
          skipped: str | None = None, error: str | None = None, out: str | None = None) -> None:
    case = ET.SubElement(parent, "testcase", classname=classname, name=_x(name), time="0")
    if error:
        ET.SubElement(case, "error", message=_x(error.splitlines()[0]), type="RequestError").text = _x(error)
    elif failures:
        ET.SubElement(case, "failure", message=_x(failures[0] if len(failures) == 1 else f"{len(failures)} gate checks failed: "
                      + "; ".join(failures)), type="GateFailure").text = _x("\n".join(failures))
    elif skipped:
        ET.SubElement(case, "skipped", message=_x(skipped))
    if out:
        ET.SubElement(case, "system-out").text = _x(out)


def _suite(root: ET.Element, name: str, timestamp: str | None) -> ET.Element:
    suite = ET.SubElement(root, "testsuite", name=name)
    if timestamp:
        suite.set("timestamp", timestamp[:19])
    return suite


def _count(suite: ET.Element) -> dict[str, int]:
    cases = suite.findall("testcase")
    counts = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
              "errors": sum(c.find("error") is not None for c in cases),
              "skipped": sum(c.find("skipped") is not None for c in cases)}
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("time", "0")
    return counts


def render_junit(summary: dict[str, Any]) -> str:
    """JUnit XML: suite refuseu.languages (a testcase per language, failing when any of its gate checks
    fails), suite refuseu.gates (a testcase per language and gate check), suite refuseu.run (request errors
    and run-wide gate failures)."""
    run, gate = summary["run"], summary["gate"]
    root = ET.Element("testsuites", name=f"refuseu-audit {_x(run.get('model'))}")
    stamp = run.get("updated") or run.get("created")
    langs = _suite(root, "refuseu.languages", stamp)
    props = ET.SubElement(langs, "properties")
    for key, value in (("model", run.get("model")), ("backend", run.get("backend")),
                       ("suite", f"{run['suite'].get('name')} {run['suite'].get('version')}"),
                       ("suite_hash", run["suite"].get("hash")), ("judge", run.get("judge")),
                       ("reference", run.get("reference")), ("schema_version", summary.get("schema_version")),
                       ("passed", str(gate["passed"]).lower())):
        ET.SubElement(props, "property", name=key, value=_x(value))
    checks: dict[str, list[dict[str, Any]]] = {}
    for c in gate.get("checks", []):
        checks.setdefault(c["language"], []).append(c)
    gated_only = gate.get("thresholds", {}).get("languages") or []
    for lang, d in summary["by_language"].items():
        mine = checks.get(lang, [])
        failed = [c["message"] for c in mine if not c["passed"]]
        skip = None
        if gated_only and lang not in gated_only:
            skip = f"{d['name']} ({lang}) is not in the gate's languages"
        elif any(c["check"] == "min_cases" for c in mine) and not failed:
            skip = next(c["message"] for c in mine if c["check"] == "min_cases")
        _case(langs, "refuseu.language", f"{lang} {d['name']}", failures=failed, skipped=skip, out=_lang_line(lang, d))
    gates = _suite(root, "refuseu.gates", stamp)
    for c in gate.get("checks", []):
        if c["check"] == "min_cases":
            _case(gates, f"refuseu.gate.{c['check']}", c["language"], skipped=c["message"])
        else:
            _case(gates, f"refuseu.gate.{c['check']}", c["language"], failures=[] if c["passed"] else [c["message"]],
                  out=c["message"])
    runs = _suite(root, "refuseu.run", stamp)
    errors = summary.get("errors", [])
    detail = "\n".join(f"{e['lang']} {e['case_id']} ({e['id']}): {e['error']}" for e in errors[:500])
    _case(runs, "refuseu.run", "requests",
          error=f"{len(errors)} request(s) ended in errors; rerun the same command to retry them\n{detail}" if errors else None,
          out=f"{summary['overall'].get('n_records', 0)} records")
    # The run's own gate testcase fails whenever the gate fails (with every failure), so a CI view that shows
    # only this suite still reads FAIL for, say, a language whose every request ended in an error.
    _case(runs, "refuseu.run", "gate", failures=list(gate["failures"]),
          out="PASS: every gate holds" if gate["passed"] else f"FAIL: {len(gate['failures'])} gate check(s) failed")
    totals = {k: 0 for k in ("tests", "failures", "errors", "skipped")}
    for suite in (langs, gates, runs):
        for k, v in _count(suite).items():
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def md_escape(text: Any) -> str:
    """One table cell or list item: no line breaks, pipes and markup characters escaped."""
    s = " ".join(str(text).split())
    return re.sub(r"([\\`*_|<>\[\]])", r"\\\1", s)


def render_markdown(summary: dict[str, Any]) -> str:
    run, gate, overall = summary["run"], summary["gate"], summary["overall"]
    ref = run["reference"]
    verdict = "✅ PASS" if gate["passed"] else "❌ FAIL"
    suite = run["suite"]
    lines = [
        f"### refuseu audit: {verdict} · {md_escape(run.get('model'))}",
        "",
        f"Suite {md_escape(suite.get('name'))} {md_escape(suite.get('version'))} (`{str(suite.get('hash') or '')[:12]}`) · "
        f"judge {md_escape(run.get('judge'))} · backend {md_escape(run.get('backend'))} · reference {ref} · "
        f"{overall.get('n_records', 0):,} records · refusal overall {pct(overall['refusal_rate'])} (n={overall['n']:,})",
        "",
        f"| Language | n | Refusal [95% CI] | Judge-corrected [95% CI] | Gap to {ref} (pts) | Over-refusal | Same language | Leaks | Errors | Gate |",
        "|---|--:|---|---|--:|--:|--:|--:|--:|:-:|",
    ]
    failing_langs = {c["language"] for c in gate.get("checks", []) if not c["passed"]}
    for lang, d in summary["by_language"].items():
        ci = d.get("ci")
        rate = pct(d["refusal_rate"]) + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
        gap = "–" if d.get("gap") is None else points(d["gap"]) + ("\\*" if d.get("gap_significant") else "")
        leaks = "–" if d.get("leaks") is None else f"{d['leaks']}/{d['n_parallel']}"
        status = "❌" if lang in failing_langs else "✅"
        corr = d.get("corrected")
        fixed = "–" if not corr else pct(corr["rate"]) + f" [{100 * corr['ci'][0]:.1f}, {100 * corr['ci'][1]:.1f}]"
        lines.append(f"| {md_escape(d['name'])} ({lang}) | {d['n']} | {rate} | {fixed} | {gap} | {pct(d['over_refusal_rate'])} | "
                     f"{pct(d['language_consistency'])} | {leaks} | {d['errors']} | {status} |")
    lines += ["", "\\* the gap is significant at p < 0.05 (two-proportion z-test, or Fisher's exact test for small cells). "
              "Leaks: ids refused in the reference language and answered in this one. Judge-corrected: the refusal rate "
              f"corrected for the judge's measured error in that language; the gate used {gate.get('rates', 'raw')} rates."]
    for lang, d in summary["by_language"].items():
        if d.get("gap_within_judge_error"):
            lines.append(f"- The {d['gap']:.0f}-point {lang} gap is within what judge error alone can produce.")
    if gate["failures"]:
        lines += ["", f"**Failing gates ({len(gate['failures'])})**", ""]
        lines += [f"- {md_escape(f)}" for f in gate["failures"][:MAX_MD_FAILURES]]
        if len(gate["failures"]) > MAX_MD_FAILURES:
            lines.append(f"- … and {len(gate['failures']) - MAX_MD_FAILURES} more (see report.html)")
    for w in gate.get("warnings", []):
        lines += ["", f"⚠️ {md_escape(w)}"]
    if overall.get("errors"):
        lines += ["", f"⚠️ {overall['errors']} request(s) ended in errors; the results are incomplete "
                  "(rerun the same command to retry only those)."]
    if overall.get("missing_verdicts"):
        lines += ["", f"⚠️ {overall['missing_verdicts']} answer(s) have no verdict; judging did not finish "
                  "(rerun the same command to judge them)."]
    return "\n".join(lines) + "\n"
