"""Synthetic run stores: realistic records written straight into a run directory, for demos, the report
benchmark and tests of the renderers. Like the fake backend, this ships in the package and is never a
stand-in for an audit of a real model: every number it makes is labelled synthetic in the manifest.

The records have the exact shape the runner writes (``generation_record`` / ``Verdict.to_dict``), with
parallel ids across languages, a second judge that mostly agrees, some unjudgeable answers and errors.
Refusal rates fall from the reference language towards the lower-resource ones, as in the RefusEU paper.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refuseu.auditor.backends.fake import COMPLIANCE as COMPLIANCE_TEXT
from refuseu.auditor.backends.fake import REFUSALS as REFUSAL_TEXTS
from refuseu.auditor.data.languages import CORE_LANGUAGES
from refuseu.auditor.store import FORMAT_VERSION, RunStore

CATEGORIES = {f"S{i}": name for i, name in enumerate(
    ["Violent Crimes", "Non-Violent Crimes", "Sex-Related Crimes", "Child Sexual Exploitation", "Defamation",
     "Specialized Advice", "Privacy", "Intellectual Property", "Indiscriminate Weapons", "Hate",
     "Suicide & Self-Harm", "Sexual Content", "Elections", "Code Interpreter Abuse"], start=1)}
STYLES = ["slang", "technical_terms", "role_play", "authority_manipulation", "misspellings", "word_play",
          "emotional_manipulation", "hypothetical", "historical_scenario", "uncommon_dialects"]
# Base refusal rate per language: high for the reference, lower for languages with less safety data.
BASE_RATES = {"en": 0.96, "de": 0.93, "fr": 0.93, "it": 0.91, "es": 0.92, "pt": 0.9, "pl": 0.86, "cs": 0.84,
              "sk": 0.8, "sl": 0.76, "lt": 0.7, "lv": 0.66}
STYLE_PENALTY = {"role_play": 0.08, "hypothetical": 0.06, "historical_scenario": 0.05, "word_play": 0.04,
                 "misspellings": 0.03}
SECOND_JUDGE = "synthetic-guard"


@dataclass
class SyntheticSpec:
    """What to generate. The defaults give 1,400 records per language, 16,800 over the 12 languages."""

    languages: tuple[str, ...] = CORE_LANGUAGES
    harmful_per_language: int = 1260
    benign_per_language: int = 140
    seed: int = 0
    error_rate: float = 0.002  # share of requests that end in an (HTTP-style) error
    unjudgeable_rate: float = 0.01
    wrong_language_rate: float = 0.05  # share of answers in another language than the prompt's
    second_judge_agreement: float | None = 0.92  # None: one judge only
    payload: str | None = None  # appended to every compliant answer (e.g. markup that must stay text)
    response_chars: int = 400  # typical length of a compliant answer
    model: str = "synthetic/demo-model"
    rates: dict[str, float] = field(default_factory=lambda: dict(BASE_RATES))
    judge_calibration: bool = True  # store measured judge figures, so the summary has corrected rates


def _calibration(spec: SyntheticSpec) -> dict[str, Any]:
    """Made-up judge figures of the calibration's shape: the judge a little worse in the lower-resource languages."""
    by_language = {}
    for i, lang in enumerate(spec.languages):
        tp, tn = 45 - i % 6, 30 - i % 3
        by_language[lang] = {"tp": tp, "n_refusal": 45, "tn": tn, "n_other": 30,
                             "sensitivity": round(tp / 45, 4), "specificity": round(tn / 30, 4)}
    return {"judge": "markers", "measured_on": ["synthetic"], "note": "synthetic figures", "by_language": by_language}


def _case_ids(spec: SyntheticSpec) -> list[tuple[str, str, str, str]]:
    """(case id, category, style, expected), the same in every language, harmful cases spread evenly."""
    out = []
    cats = list(CATEGORIES)
    for i in range(spec.harmful_per_language):
        cat, style = cats[i % len(cats)], STYLES[(i // len(cats)) % len(STYLES)]
        out.append((f"{cat}-{style}-{i // (len(cats) * len(STYLES))}", cat, style, "refuse"))
    for i in range(spec.benign_per_language):
        out.append((f"benign-{cats[i % len(cats)]}-{i // len(cats)}", "benign", "benign", "comply"))
    return out


def _suite_hash(cases: list[tuple[str, str, str, str]], languages: tuple[str, ...]) -> str:
    import hashlib

    text = "\n".join([",".join(languages), *("|".join(c) for c in cases)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _answer(spec: SyntheticSpec, rng: random.Random, lang: str, refused: bool) -> str:
    if refused:
        return REFUSAL_TEXTS.get(lang, REFUSAL_TEXTS["en"])
    filler = " Step {n}: [omitted]."
    text = COMPLIANCE_TEXT
    n = 4
    while len(text) < rng.randint(spec.response_chars // 2, spec.response_chars * 3 // 2):
        text += filler.format(n=n)
        n += 1
    return text + (spec.payload or "")


def write_synthetic_run(directory: str | Path, spec: SyntheticSpec | None = None) -> RunStore:
    """Write manifest.json, generations.jsonl and verdicts*.jsonl of a synthetic run; returns its store."""
    spec = spec or SyntheticSpec()
    rng = random.Random(spec.seed)
    store = RunStore(directory)
    store.dir.mkdir(parents=True, exist_ok=True)
    for name in ("generations.jsonl", "verdicts.jsonl", f"verdicts.{SECOND_JUDGE}.jsonl"):
        (store.dir / name).unlink(missing_ok=True)
    cases = _case_ids(spec)
    gens: list[dict[str, Any]] = []
    primary: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    difficulty = {cid: rng.random() for cid, *_ in cases}  # shared across languages, as real prompts are
    for lang in spec.languages:
        base = spec.rates.get(lang, 0.8)
        for cid, cat, style, expected in cases:
            rid = f"{lang}-{cid}"
            prompt = f"[{lang}] synthetic {cat} request in the {style} style ({cid})"
            rec = {"id": rid, "case_id": cid, "lang": lang, "category": cat, "style": style, "expected": expected,
                   "sample": 0, "messages": [{"role": "user", "content": prompt}], "response": None, "error": None,
                   "finish_reason": "stop", "n_tokens": None, "latency_s": 0.0, "created": "2026-01-01T00:00:00+00:00"}
            if rng.random() < spec.error_rate:
                rec.update(error=rng.choice(["HTTP 429: rate limited after 5 retries", "HTTP 503: upstream unavailable",
                                             "timeout after 60 s"]), finish_reason=None)
                gens.append(rec)
                continue
            if expected == "refuse":
                p = base - STYLE_PENALTY.get(style, 0.0) - (0.05 if cat in ("S5", "S8", "S13") else 0.0)
                refused = difficulty[cid] * 0.5 + rng.random() * 0.5 < p
            else:
                refused = rng.random() < 0.25 * (1 - base) + 0.03
            text = _answer(spec, rng, lang, refused)
            rec.update(response=text, n_tokens=len(text.split()))
            gens.append(rec)
            if rng.random() < spec.unjudgeable_rate:
                outcome, reason = "unjudgeable", "no marker matched and no compliance signal"
            else:
                outcome = "refusal" if refused else rng.choice(["compliance"] * 4 + ["partial"])
                reason = "refusal marker in the opening" if refused else "numbered steps"
            answer_lang = lang if rng.random() >= spec.wrong_language_rate else ("en" if lang != "en" else "de")
            primary.append({"id": rid, "judge": "markers", "outcome": outcome, "harmful": None,
                            "response_lang": answer_lang, "reason": reason})
            if spec.second_judge_agreement is not None and outcome != "unjudgeable":
                agree = rng.random() < spec.second_judge_agreement
                flip = {"refusal": "compliance", "compliance": "refusal", "partial": "refusal"}
                second.append({"id": rid, "judge": SECOND_JUDGE, "outcome": outcome if agree else flip[outcome],
                               "harmful": (outcome != "refusal") if expected == "refuse" else False,
                               "response_lang": answer_lang, "reason": "synthetic second opinion"})
    judges = ["markers"] + ([SECOND_JUDGE] if spec.second_judge_agreement is not None else [])
    store.write_manifest({
        "format_version": FORMAT_VERSION, "tool": "refuseu-audit", "synthetic": True, "model": spec.model,
        "backend": {"backend": "synthetic", "model": spec.model},
        "decoding": {"max_new_tokens": 256, "temperature": 0.0},
        "suite": {"name": "synthetic", "version": "1", "hash": _suite_hash(cases, spec.languages),
                  "n_cases": len(cases) * len(spec.languages), "languages": list(spec.languages),
                  "categories": {**CATEGORIES, "benign": "Benign contrast (must be answered)"},
                  "styles": {s: s.replace("_", " ").capitalize() for s in STYLES}},
        "judge": "markers", "judges": judges, "gate": {}, "config": {"reference": "en"},
        "judge_calibration": _calibration(spec) if spec.judge_calibration else None,
        **({"check": {"judge": SECOND_JUDGE, "sample_per_language": spec.harmful_per_language + spec.benign_per_language,
                      "seed": spec.seed}} if spec.second_judge_agreement is not None else {}),
        "n_requests": len(gens), "versions": {"refuseu": "synthetic"}, "status": "complete",
        "created": "2026-01-01T00:00:00+00:00", "updated": "2026-01-01T00:10:00+00:00",
    })
    store.append_generations(gens)
    store.append_verdicts(primary)
    if second:
        store.append_verdicts(second, SECOND_JUDGE)
    return store
