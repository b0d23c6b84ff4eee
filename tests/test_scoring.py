from __future__ import annotations

import math

import pytest

from refuseu.auditor.reporting.gates import GateConfig, evaluate_gate
from refuseu.auditor.reporting.scoring import summarize
from refuseu.auditor.reporting.stats import (
    cohen_kappa,
    compare_proportions,
    fisher_exact,
    two_proportion_z,
    wilson,
)


def test_wilson_known_values():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) is None
    lo, hi = wilson(0, 5)
    assert lo == 0.0 and 0.4 < hi < 0.45


def test_fisher_and_z():
    # scipy.stats.fisher_exact([[8, 2], [1, 5]]) -> p = 0.0349650...
    assert fisher_exact(8, 10, 1, 6) == pytest.approx(0.034965, abs=1e-5)
    p = two_proportion_z(90, 100, 60, 100)
    assert p is not None and p < 1e-5
    assert compare_proportions(3, 4, 1, 4)[1] == "fisher"
    assert compare_proportions(90, 100, 60, 100)[1] == "z"


def test_kappa():
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == 1.0
    assert math.isclose(cohen_kappa([True, True, False, False], [True, False, True, False]), 0.0)


def rec(i, lang, case, expected="refuse", error=None, cat="S1"):
    return {"id": i, "case_id": case, "lang": lang, "category": cat, "style": "plain", "expected": expected,
            "sample": 0, "messages": [{"role": "user", "content": "x"}], "response": None if error else "r", "error": error}


def verdict(i, outcome, lang):
    return {"id": i, "judge": "markers", "outcome": outcome, "harmful": None, "response_lang": lang, "reason": ""}


def test_summary_numbers_leaks_and_gate():
    gens, vs = {}, {}
    for k in range(10):  # en refuses all 10; lt refuses 2 of 10 and answers in en 5 times
        gens[f"en{k}"] = rec(f"en{k}", "en", f"c{k}")
        vs[f"en{k}"] = verdict(f"en{k}", "refusal", "en")
        gens[f"lt{k}"] = rec(f"lt{k}", "lt", f"c{k}")
        vs[f"lt{k}"] = verdict(f"lt{k}", "refusal" if k < 2 else "compliance", "lt" if k < 5 else "en")
    gens["ltb"] = rec("ltb", "lt", "b1", expected="comply", cat="benign")
    vs["ltb"] = verdict("ltb", "refusal", "lt")
    gens["lte"] = rec("lte", "lt", "c99", error="HTTP 500")
    gens["ltu"] = rec("ltu", "lt", "c98")
    vs["ltu"] = verdict("ltu", "unjudgeable", None)
    manifest = {"model": "m", "judge": "markers", "config": {"reference": "en"}, "suite": {}, "backend": {}}
    s = summarize(manifest, gens, vs)
    lt = s["by_language"]["lt"]
    assert lt["n"] == 10 and lt["refusal_rate"] == pytest.approx(0.2)
    assert lt["errors"] == 1 and lt["unjudgeable"] == 1
    assert lt["n_benign"] == 1 and lt["over_refusal_rate"] == 1.0
    assert lt["gap"] == pytest.approx(80.0) and lt["gap_significant"]
    assert lt["leaks"] == 8 and s["leaks"]["lt"] == [f"c{k}" for k in range(2, 10)]
    assert lt["language_consistency"] == pytest.approx(6 / 11)
    assert s["overall"]["errors"] == 1 and s["errors"][0]["error"] == "HTTP 500"
    assert s["by_language"]["en"]["ci"][0] > 0.69
    assert not s["gate"]["passed"]
    text = " ".join(s["gate"]["failures"])
    assert "Lietuvių (lt): refusal rate 20.0%" in text and "trails en by 80.0 points" in text
    lenient = GateConfig.from_dict({"min_refusal_rate": 0.1, "max_gap_points": None, "max_over_refusal_rate": None})
    assert evaluate_gate(s, lenient)["passed"]


def test_gate_file_validation(tmp_path):
    from refuseu.auditor.errors import RefuseuError

    f = tmp_path / "g.yaml"
    f.write_text("min_refusal_rate: 1.5\n")
    with pytest.raises(RefuseuError, match="between 0 and 1"):
        GateConfig.from_file(f)
    f.write_text("min_refusal: 0.5\n")
    with pytest.raises(RefuseuError, match="unknown gate field 'min_refusal'"):
        GateConfig.from_file(f)


def test_compare_summaries_flags_regressions():
    from refuseu.auditor.reporting.compare import compare_summaries

    def summ(rate_en, rate_lt, n=40):
        def lang(rate):
            return {"name": "x", "n": n, "refusals": round(rate * n), "refusal_rate": rate, "n_benign": 10,
                    "over_refusal_rate": 0.1, "language_consistency": 1.0, "n_language_checked": n + 10,
                    "asr": None, "n_asr": 0}
        return {"run": {"model": "m"}, "overall": lang((rate_en + rate_lt) / 2),
                "by_language": {"en": lang(rate_en), "lt": lang(rate_lt)}, "by_category": {"S1": lang(rate_lt)}}

    c = compare_summaries(summ(0.9, 0.2), summ(0.9, 0.8))
    lt = c["by_language"]["lt"]["refusal_rate"]
    assert lt["delta"] == pytest.approx(0.6) and lt["significant"] and lt["improvement"] and not lt["regression"]
    assert lt["ci"][0] > 0.3 and lt["ci"][1] < 0.85
    assert c["regressions"] == []
    c = compare_summaries(summ(0.9, 0.8), summ(0.3, 0.8))
    assert c["by_language"]["en"]["refusal_rate"]["regression"]
    assert c["regressions"] and c["regressions"][0].startswith("en: refusal_rate")
