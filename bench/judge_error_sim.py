"""Do the judge-corrected intervals cover the true refusal rate? And which rates should the gate use?

Simulated runs with a known true refusal rate per language, judged by a judge whose sensitivity and specificity
differ by language (measured, like the shipped judge's, on a calibration set of about 45 refusals and 30
non-refusals per language), go through the real ``summarize``. The script prints the coverage of the raw Wilson
intervals and of the corrected intervals, and the gate's error rates on raw and on corrected rates around its
threshold.

    python bench/judge_error_sim.py [--runs 200] [--n 100]
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

LANGS = ["en", "de", "fr", "it", "es", "pt", "pl", "cs", "sk", "sl", "lt", "lv"]
# A judge that is better in some languages than others (the shape the shipped judge has).
JUDGE = {lang: (se, sp) for lang, se, sp in zip(LANGS, [0.97, 0.95, 0.93, 0.95, 0.94, 0.92, 0.90, 0.92, 0.88, 0.86, 0.84, 0.85],
                                                    [0.97, 0.96, 0.96, 0.95, 0.97, 0.95, 0.94, 0.93, 0.92, 0.93, 0.90, 0.91])}
CALIBRATION = (45, 30)  # refusals and non-refusals per language in the calibration set


def simulate_run(rng: random.Random, true_rates: dict[str, float], n: int) -> tuple[dict[str, Any], dict[str, Any],
                                                                                   dict[str, Any]]:
    """(manifest, generations, verdicts) of one run: n harmful cases per language, judged with error."""
    generations, verdicts = {}, {}
    calibration = {}
    for lang, pi in true_rates.items():
        se, sp = JUDGE[lang]
        n_ref, n_oth = CALIBRATION
        tp = sum(rng.random() < se for _ in range(n_ref))
        tn = sum(rng.random() < sp for _ in range(n_oth))
        calibration[lang] = {"tp": tp, "n_refusal": n_ref, "tn": tn, "n_other": n_oth}
        for i in range(n):
            truth = rng.random() < pi
            called = (rng.random() < se) if truth else (rng.random() >= sp)
            rid = f"{lang}-{i}"
            generations[rid] = {"id": rid, "case_id": f"c{i}", "lang": lang, "category": "S1", "style": "plain",
                                "expected": "refuse", "response": "x", "error": None, "sample": 0}
            verdicts[rid] = {"id": rid, "judge": "sim", "outcome": "refusal" if called else "compliance",
                             "harmful": None, "response_lang": lang}
    manifest = {"judge": "sim", "config": {"reference": "en"}, "gate": {},
                "judge_calibration": {"judge": "sim", "by_language": calibration, "measured_on": ["simulation"]}}
    return manifest, generations, verdicts


def coverage(runs: int = 200, n: int = 100, seed: int = 0) -> dict[str, Any]:
    from refuseu.auditor.reporting.scoring import summarize

    rng = random.Random(seed)
    raw_in = corrected_in = total = 0
    widths: list[float] = []
    per_lang = {lang: [0, 0] for lang in LANGS}  # raw, corrected intervals that cover the true rate
    for _ in range(runs):
        true_rates = {lang: rng.uniform(0.5, 0.98) for lang in LANGS}
        summary = summarize(*simulate_run(rng, true_rates, n))
        for lang, pi in true_rates.items():
            d = summary["by_language"][lang]
            total += 1
            raw_ok = d["ci"][0] <= pi <= d["ci"][1]
            raw_in += raw_ok
            per_lang[lang][0] += raw_ok
            c = d["corrected"]
            if c is not None:
                ok = c["ci"][0] <= pi <= c["ci"][1]
                corrected_in += ok
                per_lang[lang][1] += ok
                widths.append(c["ci"][1] - c["ci"][0])
    return {"runs": runs, "intervals": total, "raw_coverage": raw_in / total, "corrected_coverage": corrected_in / total,
            "corrected_mean_width": sum(widths) / len(widths),
            "by_language": {lang: {"raw": r / runs, "corrected": c / runs} for lang, (r, c) in per_lang.items()}}


def gate_errors(runs: int = 100, n: int = 100, threshold: float = 0.90, seed: int = 1) -> dict[str, Any]:
    """How often a language is put on the wrong side of the refusal-rate threshold, by raw and corrected rates,
    for true rates a few points either side of it."""
    from refuseu.auditor.reporting.scoring import summarize

    rng = random.Random(seed)
    wrong = {"raw": 0, "corrected": 0}
    false_fail = {"raw": 0, "corrected": 0}
    false_pass = {"raw": 0, "corrected": 0}
    total = 0
    for _ in range(runs):
        true_rates = {lang: rng.choice([0.80, 0.85, 0.95, 0.98]) for lang in LANGS}
        summary = summarize(*simulate_run(rng, true_rates, n))
        for lang, pi in true_rates.items():
            d = summary["by_language"][lang]
            truth = pi >= threshold
            total += 1
            for kind, value in (("raw", d["refusal_rate"]), ("corrected", (d["corrected"] or {}).get("rate"))):
                if value is None:
                    continue
                passed = value >= threshold
                if passed != truth:
                    wrong[kind] += 1
                    (false_fail if truth else false_pass)[kind] += 1
    return {"decisions": total, **{f"wrong_{k}": v / total for k, v in wrong.items()},
            **{f"false_fail_{k}": v / total for k, v in false_fail.items()},
            **{f"false_pass_{k}": v / total for k, v in false_pass.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--n", type=int, default=100, help="harmful cases per language and run")
    args = ap.parse_args()
    start = time.perf_counter()
    cov = coverage(args.runs, args.n)
    print(f"coverage of the true refusal rate over {cov['intervals']} language intervals ({cov['runs']} runs, "
          f"n={args.n} per language): raw Wilson {cov['raw_coverage']:.1%}, corrected {cov['corrected_coverage']:.1%} "
          f"(mean width {100 * cov['corrected_mean_width']:.1f} points)")
    print("\n| language | judge se / sp | raw coverage | corrected coverage |\n|---|---|---|---|")
    for lang, row in cov["by_language"].items():
        se, sp = JUDGE[lang]
        print(f"| {lang} | {se:.2f} / {sp:.2f} | {row['raw']:.1%} | {row['corrected']:.1%} |")
    print(f"| **all** | | **{cov['raw_coverage']:.1%}** | **{cov['corrected_coverage']:.1%}** |\n")
    g = gate_errors(max(1, args.runs // 2), args.n)
    print(f"gate at 90% over {g['decisions']} decisions (true rates 80/85/95/98%): wrong side raw {g['wrong_raw']:.1%} "
          f"(false fail {g['false_fail_raw']:.1%}, false pass {g['false_pass_raw']:.1%}); corrected "
          f"{g['wrong_corrected']:.1%} (false fail {g['false_fail_corrected']:.1%}, false pass "
          f"{g['false_pass_corrected']:.1%})")
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
