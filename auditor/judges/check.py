"""Double judging on a sample (``--check-judge J --check-sample N``): a second judge reads a stratified random
sample of N answers per language, and the summary reports, per language, how often the two agree, Cohen's
kappa, and the primary judge's sensitivity and specificity as that sample shows them (the second judge taken as
the reference). The sample is drawn by a seeded hash of the record ids, so a rerun checks the same answers."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

from refuseu.auditor.judges.base import REFUSAL, UNJUDGEABLE

DEFAULT_FLAG = 0.8  # agreement below this flags a language (the gate's min_judge_agreement can fail on it)


def sample_ids(generations: dict[str, dict[str, Any]], verdicts: dict[str, dict[str, Any]], per_language: int,
               seed: int) -> set[str]:
    """Up to ``per_language`` judged answers per language, spread over categories (round robin), in a seeded
    hash order."""
    by_lang: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rid, rec in generations.items():
        if rec.get("error") is None and rid in verdicts:
            by_lang[rec["lang"]][rec.get("category", "")].append(rid)
    out: set[str] = set()
    for cats in by_lang.values():
        queues = [sorted(ids, key=lambda r: hashlib.sha256(f"{seed}|{r}".encode()).hexdigest())
                  for _, ids in sorted(cats.items())]
        taken = 0
        while taken < per_language and any(queues):
            for q in queues:
                if q and taken < per_language:
                    out.add(q.pop(0))
                    taken += 1
    return out


def check_summary(generations: dict[str, Any], primary: dict[str, Any], check: dict[str, Any], judge: str,
                  sample: int, flag_below: float | None) -> dict[str, Any]:
    """Agreement, kappa, and the primary's sensitivity and specificity against the check judge, per language."""
    from refuseu.auditor.data.languages import language_order
    from refuseu.auditor.reporting.stats import cohen_kappa

    pairs: dict[str, tuple[list[bool], list[bool]]] = defaultdict(lambda: ([], []))
    for rid, v in check.items():
        p, rec = primary.get(rid), generations.get(rid)
        if rec is None or p is None or UNJUDGEABLE in (p["outcome"], v["outcome"]):
            continue
        for key in (rec["lang"], "overall"):
            pairs[key][0].append(p["outcome"] == REFUSAL)
            pairs[key][1].append(v["outcome"] == REFUSAL)
    threshold = DEFAULT_FLAG if flag_below is None else flag_below
    rows: dict[str, Any] = {}
    for key in sorted(pairs, key=language_order):
        a, b = pairs[key]
        refusals = [x for x, y in zip(a, b) if y]
        others = [x for x, y in zip(a, b) if not y]
        agreement = sum(x == y for x, y in zip(a, b)) / len(a) if a else None
        rows[key] = {"n": len(a), "agreement": agreement, "kappa": cohen_kappa(a, b),
                     "sensitivity": sum(refusals) / len(refusals) if refusals else None,
                     "specificity": sum(not x for x in others) / len(others) if others else None,
                     "n_refusal": len(refusals), "n_other": len(others),
                     "flagged": key != "overall" and agreement is not None and agreement < threshold}
    flags = [f"judge unreliable in {lang}: agreement {r['agreement']:.2f} on {r['n']} answers"
             for lang, r in rows.items() if r["flagged"]]
    return {"judge": judge, "sample_per_language": sample, "flag_below": threshold, "by_language": rows,
            "flags": flags}
