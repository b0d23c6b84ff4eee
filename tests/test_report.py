"""report.html, junit.xml, summary.md, the summary schema doc and `refuseu-audit compare`, rendered from
synthetic run stores with all 12 languages (the browser checks are in test_report_browser.py)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from refuseu.auditor.data.languages import CORE_LANGUAGES, native_name
from refuseu.auditor.data.synthetic import BASE_RATES, SyntheticSpec, write_synthetic_run
from refuseu.auditor.runner import finalize

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = "\n<script>alert('x')</script><img src=x onerror=\"alert(1)\"> | `tick` **bold**"


def small_spec(**kw) -> SyntheticSpec:
    base = dict(harmful_per_language=84, benign_per_language=14, seed=3, payload=PAYLOAD, error_rate=0.01)
    base.update(kw)
    return SyntheticSpec(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    store = write_synthetic_run(tmp_path_factory.mktemp("synth") / "run", small_spec())
    return store.dir, finalize(store)


class Attrs(HTMLParser):
    """Every tag and attribute of a page, and the text of its script and style elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)

    def handle_endtag(self, tag):
        self._in = None


def test_report_is_self_contained_and_complete(run):
    run_dir, summary = run
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = Attrs()
    page.feed(html)
    # Nothing can load from outside: no src at all, links only to anchors on the page, no CSS imports/urls.
    for tag, attrs in page.tags:
        assert "src" not in attrs and "srcset" not in attrs and "action" not in attrs, (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith("#"), (tag, attrs)
    style = html[html.index("<style>"):html.index("</style>")]
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    # Exactly one script, ours, and the CSP allows exactly it by hash and nothing remote.
    assert [t for t, _ in page.tags].count("script") == 1
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    # Model text is escaped wherever it appears.
    assert "<script>alert" not in html and "onerror=\"alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    # Header: model, backend, suite, judge, date, versions and the verdict with failing gates in words.
    assert "✗ FAIL" in html and "synthetic/demo-model" in html and summary["run"]["suite"]["hash"][:12] in html
    for failure in summary["gate"]["failures"]:
        assert failure.replace("'", "&#39;") in html
    # Every section, every language by its own name and code, the 14 x 12 heatmap.
    for section in ("languages", "heatmap", "styles", "side", "leaks", "judges", "errors", "examples", "method"):
        assert f'id="{section}"' in html
    for lang in CORE_LANGUAGES:
        assert native_name(lang) in html and f'<span class="code">{lang}</span>' in html
    heat = html[html.index('<table class="heat">'):]
    heat = heat[:heat.index("</table>")]
    assert len(re.findall(r'<td class="h\d" title=', heat)) >= 12 * 14
    # Gap intervals, significance marks, leaks with examples, judge agreement, the errors by message.
    assert "▼*" in html and 'class="whisker"' in html
    assert "of " + str(summary["by_language"]["lv"]["leaks"]) + " leaks" in html
    assert "markers vs synthetic-guard" in html and "Cohen" in html
    assert summary["errors"], "the fixture has errors"
    for e in summary["errors"][:5]:
        assert e["case_id"] in html and e["id"] in html
    assert summary["errors"][0]["error"] in html
    # Examples are collapsed by default.
    assert "<details open" not in html
    assert len(html.encode()) < 1_000_000  # 840 records: far from the 5 MB budget


def test_worst_failures_rank_harmful_then_leaks_then_length():
    from refuseu.auditor.reporting.examples import worst_failures

    def rec(rid, case, text):
        return {"id": rid, "case_id": case, "lang": "lv", "category": "S1", "style": "slang", "expected": "refuse",
                "messages": [{"role": "user", "content": "p"}], "response": text, "error": None}

    gens = {"a": rec("a", "c1", "x" * 50), "b": rec("b", "c2", "x" * 10), "c": rec("c", "c3", "x" * 900),
            "d": rec("d", "c4", "x" * 5000), "e": rec("e", "c5", "refused")}
    verdicts = {"a": {"outcome": "compliance", "harmful": True}, "b": {"outcome": "compliance", "harmful": None},
                "c": {"outcome": "partial"}, "d": {"outcome": "compliance"}, "e": {"outcome": "refusal"}}
    out = worst_failures(gens, verdicts, {"lv": ["c2"]}, limit=4)
    assert [e["id"] for e in out["lv"]] == ["c1", "c2", "c4", "c3"]
    assert out["lv"][1]["leak"] and not out["lv"][0]["leak"]
    long = worst_failures({"d": rec("d", "c4", "y" * 10_000)}, {"d": {"outcome": "compliance"}}, {})
    assert long["lv"][0]["response"].endswith("[7000 more characters in generations.jsonl]")


def test_junit_has_a_testcase_per_language_and_gate_and_parses(run):
    run_dir, summary = run
    root = ET.parse(run_dir / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"refuseu.languages", "refuseu.gates", "refuseu.run"}
    langs = suites["refuseu.languages"].findall("testcase")
    assert [c.get("name").split()[0] for c in langs] == list(CORE_LANGUAGES)
    failing = {c["language"] for c in summary["gate"]["checks"] if not c["passed"]}
    for case in langs:
        lang = case.get("name").split()[0]
        failure = case.find("failure")
        assert (failure is not None) == (lang in failing), lang
        if failure is not None:
            assert native_name(lang) in failure.get("message")
    gate_cases = suites["refuseu.gates"].findall("testcase")
    assert len(gate_cases) == len(summary["gate"]["checks"])
    assert {c.get("classname") for c in gate_cases} >= {"refuseu.gate.refusal_rate", "refuseu.gate.gap"}
    errors = suites["refuseu.run"].find("testcase[@name='requests']/error")
    assert errors is not None and str(len(summary["errors"])) in errors.get("message")
    total = 0
    for suite in suites.values():  # the counts in the attributes are right
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
        total += len(cases)
    assert int(root.get("tests")) == total and root.get("failures") != "0"


def test_junit_survives_text_xml_cannot_hold(run):
    from refuseu.auditor.reporting.ci_outputs import render_junit

    _, summary = run
    bad = {**summary, "errors": [{"id": "r1", "case_id": "S1-x", "lang": "lv", "error": "\x1b[31m<boom> & \x00\"q\"]]>"}]}
    root = ET.fromstring(render_junit(bad).encode())
    error = root.find("testsuite[@name='refuseu.run']/testcase[@name='requests']/error")
    assert "[31m<boom> & \"q\"]]>" in error.text and "\x00" not in error.text


def test_summary_md_is_a_compact_table(run, tmp_path):
    from refuseu.auditor.reporting.ci_outputs import render_markdown

    run_dir, summary = run
    md = (run_dir / "summary.md").read_text(encoding="utf-8")
    assert md.startswith("### refuseu audit: ❌ FAIL")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "(" in line.split("|")[1]]
    assert len(rows) == 12 and all(r.count("|") == 11 for r in rows)  # with the judge-corrected column
    assert "| Latviešu (lv) |" in md and "**Failing gates" in md and "request(s) ended in errors" in md
    tricky = {**summary, "run": {**summary["run"], "model": "a|b <img src=x>\n`x`"}}
    head = render_markdown(tricky).splitlines()[0]
    assert "a\\|b \\<img src=x\\> \\`x\\`" in head


def _flatten(summary: dict) -> dict[str, set[str]]:
    """Field paths of a summary, with its open-ended keys written as the doc writes them."""
    dynamic = {"by_language": "<lang>", "by_category": "<category>", "by_style": "<style>",
               "by_language_category": "<lang>", "by_language_category.<lang>": "<category>", "leaks": "<lang>",
               "judges.agreement": "<judge>", "judges.agreement.<judge>": "<lang>", "run.versions": "<package>",
               "judges.others": "<judge>", "judges.others.<judge>": "<lang>", "judges.check.by_language": "<lang>"}
    slices = ("overall", "by_language.<lang>", "by_category.<category>", "by_style.<style>",
              "by_language_category.<lang>.<category>")
    names = {bool: "bool", int: "int", float: "number", str: "string", list: "list", type(None): "null"}
    out: dict[str, set[str]] = {}

    def walk(x, path):
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}.{dynamic.get(path, k)}" if path else dynamic.get(path, k))
        elif isinstance(x, list) and x and isinstance(x[0], dict):
            for v in x:
                walk(v, path + "[]")
        else:
            for s in slices:
                if path.startswith(s + "."):
                    field = path[len(s) + 1:]
                    head = field.split(".")[0]  # nested slice fields (corrected.rate, judge.tp) are slice fields too
                    if not (s == "by_language.<lang>" and head in BY_LANGUAGE_ONLY) and not (s == "overall" and head in ("n_records", "languages")):
                        path = "<slice>." + field
                    break
            out.setdefault(path, set()).add(names[type(x)])

    walk(summary, "")
    return out


BY_LANGUAGE_ONLY = {"name", "gap", "gap_ci", "gap_p", "gap_test", "gap_significant", "leaks", "n_parallel",
                    "gap_corrected", "gap_within_judge_error"}


def test_schema_doc_matches_a_real_summary(run):
    _, summary = run
    doc = (ROOT / "docs" / "summary-schema.md").read_text(encoding="utf-8")
    documented = {m.group(1): set(m.group(2).replace("\\|", "|").split("|"))
                  for m in re.finditer(r"^\| `([^`]+)` \| ([a-z\\|]+) \|", doc, re.M)}
    actual = _flatten(summary)
    assert set(actual) == set(documented), (set(actual) ^ set(documented))
    types = {"int": {"int"}, "number": {"number", "int"}}  # an int is a valid number
    for path, seen in actual.items():
        allowed = set().union(*(types.get(t, {t}) for t in documented[path]))
        assert seen <= allowed, (path, seen, documented[path])
    assert summary["schema_version"] == int(re.search(r"schema_version (\d+)", doc).group(1))


def test_newcombe_interval_and_gap_ci():
    from refuseu.auditor.reporting.stats import newcombe_interval

    lo, hi = newcombe_interval(48, 80, 56, 70)  # Newcombe (1998), example (a): 56/70 - 48/80
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)
    assert newcombe_interval(0, 0, 1, 2) is None


def test_gap_interval_brackets_the_gap(run):
    _, summary = run
    for lang, d in summary["by_language"].items():
        if d["gap"] is None:
            continue
        lo, hi = d["gap_ci"]
        assert lo <= d["gap"] <= hi, lang


def test_report_command_rerenders_everything(run, cli, tmp_path):
    import shutil

    run_dir, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for name in ("report.html", "junit.xml", "summary.md", "summary.json"):
        (copy / name).unlink()
    proc = cli("report", str(copy))
    assert proc.returncode == 1, proc.stderr  # the synthetic model fails the gate
    for name in ("report.html", "junit.xml", "summary.md", "summary.json"):
        assert (copy / name).is_file(), name
    assert json.loads((copy / "summary.json").read_text())["gate"]["passed"] is False


def test_compare_writes_html_json_md_and_flags_regressions(run, cli, tmp_path):
    run_dir, _ = run
    worse = write_synthetic_run(tmp_path / "worse", small_spec(rates={**BASE_RATES, "de": 0.45}))
    finalize(worse)
    out = tmp_path / "cmp"
    proc = cli("compare", str(run_dir), str(worse.dir), "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    assert "regression: de: refusal_rate" in proc.stdout
    comparison = json.loads((out / "compare.json").read_text())
    de = comparison["by_language"]["de"]["refusal_rate"]
    assert de["regression"] and de["delta"] < -0.2 and de["ci"][1] < 0
    assert comparison["warnings"] == []  # same cases, same judge
    html = (out / "compare.html").read_text(encoding="utf-8")
    assert "✗ " in html and 'class="regressed"' in html and "Deutsch" in html and "<script>alert" not in html
    for lang in CORE_LANGUAGES:
        assert native_name(lang) in html
    assert "🔻" in (out / "compare.md").read_text(encoding="utf-8")
    same = cli("compare", str(run_dir), str(run_dir / "summary.json"), "--out", str(tmp_path / "same"))
    assert same.returncode == 0, same.stderr


def test_compare_bad_input_is_one_clear_line(cli, tmp_path):
    proc = cli("compare", str(tmp_path / "missing"), str(tmp_path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing" in proc.stderr
    bad = tmp_path / "summary.json"
    bad.write_text('{"schema_version": 99, "run": {}, "by_language": {}}')
    proc = cli("compare", str(bad), str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "schema_version" in proc.stderr


@pytest.mark.parametrize("spec", [
    SyntheticSpec(harmful_per_language=14, benign_per_language=2, error_rate=1.0),  # every request failed
    SyntheticSpec(languages=("en",), harmful_per_language=14, benign_per_language=0, second_judge_agreement=None),
    SyntheticSpec(languages=("lv", "de"), harmful_per_language=3, benign_per_language=1),  # no reference language
], ids=["all-errors", "reference-only", "no-reference"])
def test_edge_runs_render_every_output(spec, tmp_path):
    store = write_synthetic_run(tmp_path / "run", spec)
    summary = finalize(store)
    html = (store.dir / "report.html").read_text(encoding="utf-8")
    assert ("✓ PASS" in html) == summary["gate"]["passed"]
    ET.parse(store.dir / "junit.xml")
    assert (store.dir / "summary.md").read_text(encoding="utf-8").startswith("### refuseu audit")
    if spec.error_rate == 1.0:
        assert "no judged answers" in html and not summary["gate"]["passed"]  # an all-errors run never reads PASS
        assert f"Errors ({summary['overall']['errors']})" in html
        root = ET.parse(store.dir / "junit.xml").getroot()
        assert root.find("testsuite[@name='refuseu.run']/testcase[@name='gate']/failure") is not None


def test_header_names_the_weakest_categories_and_cells(run):
    from refuseu.auditor.reporting.html import weakest

    run_dir, summary = run
    w = weakest(summary)
    rates = [d["refusal_rate"] for row in summary["by_language_category"].values() for d in row.values() if d["n"] >= 5]
    assert w["cells"][0]["refusal_rate"] == min(rates) and len(w["cells"]) == 5
    assert [c["refusal_rate"] for c in w["categories"]] == sorted(c["refusal_rate"] for c in w["categories"])
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    head = html[:html.index('id="languages"')]
    first = w["cells"][0]
    assert f"{native_name(first['lang'])} × {first['category']} {100 * first['refusal_rate']:.1f}%" in head
