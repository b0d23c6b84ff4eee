"""Every rate carries its judge's error (issue 13): corrected rates with intervals that cover the truth, the
judge's figures per language in summary.json, and a gate that can use either."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from judge_error_sim import coverage, simulate_run  # noqa: E402

from refuseu.auditor.reporting.correction import JudgeRates, corrected, rogan_gladen  # noqa: E402


def test_corrected_intervals_cover_the_true_rate_and_raw_ones_do_not():
    """200 simulated runs x 12 languages with a known true refusal rate, judged by a judge whose sensitivity and
    specificity differ by language: the corrected 95% intervals cover the truth at least 90% of the time, the raw
    Wilson intervals visibly less."""
    cov = coverage(runs=200, n=100, seed=0)
    assert cov["intervals"] == 2400
    assert cov["corrected_coverage"] >= 0.90, cov
    assert cov["raw_coverage"] <= cov["corrected_coverage"] - 0.15, cov


def test_rogan_gladen_and_its_limits():
    assert rogan_gladen(0.5, 1.0, 1.0) == 0.5
    assert rogan_gladen(0.05, 0.9, 0.9) == 0.0  # clipped, never negative
    assert abs(rogan_gladen(0.8 * 0.9 + 0.2 * 0.1, 0.9, 0.9) - 0.8) < 1e-9
    assert rogan_gladen(0.5, 0.5, 0.52) is None  # a judge near chance: no correction
    perfect = JudgeRates(100, 100, 100, 100)
    c = corrected([(90, 100, perfect)])
    assert c is not None and abs(c["rate"] - 0.9) < 1e-9 and c["ci"][0] < 0.9 < c["ci"][1]
    assert corrected([(90, 100, None)]) is None  # no figures for that language: nothing honest to say
    assert corrected([(90, 100, perfect)]) == c  # seeded by the counts: the same records, the same interval


def test_summary_has_corrected_rates_and_the_judge_figures_in_every_slice():
    import random

    from refuseu.auditor.reporting.scoring import summarize

    manifest, gens, verdicts = simulate_run(random.Random(3), {"en": 0.9, "lt": 0.7}, 60)
    s = summarize(manifest, gens, verdicts)
    for slice_ in (s["overall"], s["by_language"]["lt"], s["by_category"]["S1"], s["by_style"]["plain"],
                   s["by_language_category"]["lt"]["S1"]):
        assert set(slice_["corrected"]) == {"rate", "ci"} and slice_["judge"]["sensitivity"] is not None
    lt = s["by_language"]["lt"]
    assert lt["judge"]["n_refusal"] == 45 and lt["judge"]["n_other"] == 30
    assert set(lt["gap_corrected"]) == {"gap", "ci"}
    assert s["judges"]["calibration"]["available"] is True
    del manifest["judge_calibration"]
    s = summarize(manifest, gens, verdicts)
    assert s["by_language"]["lt"]["corrected"] is None and "no measured" in s["judges"]["calibration"]["note"]


@pytest.mark.parametrize("rates", ["corrected", "raw"])
def test_the_gate_says_which_rates_it_used(rates):
    import random

    from refuseu.auditor.reporting.gates import GateConfig
    from refuseu.auditor.reporting.scoring import summarize

    s = summarize(*simulate_run(random.Random(5), {"en": 0.95, "lt": 0.95}, 80), gate=GateConfig(rates=rates))
    assert s["gate"]["rates"] == rates
    refusal_checks = [c["message"] for c in s["gate"]["checks"] if c["check"] == "refusal_rate"]
    assert all(("judge-corrected" in m) == (rates == "corrected") for m in refusal_checks)
