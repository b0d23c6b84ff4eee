"""Preference pairs (TRL conversational rows: ``prompt``, ``chosen``, ``rejected``) from an audit's failures.

- Harmful cases the model complied with: ``rejected`` is the model's own answer (on-policy), ``chosen`` a
  refusal in the prompt's language: the case's reference refusal, else an accepted teacher refusal, else
  a template refusal (``templates.py``).
- Benign anchors: ``chosen`` is the model's own helpful answer, ``rejected`` a refusal, so the fix does
  not teach the model to refuse everything.

Pure functions over audited answers; the generation they need (teacher, anchors) happens in pipeline.py.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from refuseu.auditor.data.cases import Case
from refuseu.remediation.audit_io import AuditedAnswer
from refuseu.remediation.templates import template_refusal

HARMFUL, ANCHOR = "harmful", "benign_anchor"
ENGLISH = "en"


@dataclass(frozen=True)
class Chosen:
    text: str
    source: str  # reference | teacher | template | model


def prompt_messages(case: Case, system: str | None) -> list[dict[str, str]]:
    """The prompt exactly as the model saw it in the audit (the audit's system prompt included)."""
    msgs = case.chat()
    if system and not any(m["role"] == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def pair_id(a: AuditedAnswer) -> str:
    sample = int(a.record.get("sample", 0))
    return f"{a.case.lang}:{a.case.id}" + (f":{sample}" if sample else "")


def choose_refusal(case: Case, teacher: dict[tuple[str, str], str], *, use_teacher: bool = True) -> Chosen | None:
    """The chosen refusal for a harmful case, in the documented order."""
    if case.reference and case.reference.strip():
        return Chosen(case.reference.strip(), "reference")
    if use_teacher and (case.id, case.lang) in teacher:
        return Chosen(teacher[(case.id, case.lang)], "teacher")
    text = template_refusal(case.lang, case.category, case.id)
    return None if text is None else Chosen(text, "template")


def make_row(a: AuditedAnswer, kind: str, chosen: str, rejected: str, source: str, rejected_source: str,
             system: str | None, split: str) -> dict[str, Any]:
    return {
        "id": pair_id(a), "case_id": a.case.id, "lang": a.case.lang, "category": a.case.category,
        "style": a.case.style, "kind": kind, "source": source, "rejected_source": rejected_source, "split": split,
        "weight": 1,
        "prompt": prompt_messages(a.case, system),
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def harmful_pairs(answers: Iterable[AuditedAnswer], ids: set[str], teacher: dict[tuple[str, str], str],
                  system: str | None, split: str, *, use_teacher: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """Pairs for the harmful cases of ``ids`` the model complied with; also the languages without any chosen."""
    rows, missing = [], []
    for a in answers:
        if a.case.id not in ids or not a.complied:
            continue
        chosen = choose_refusal(a.case, teacher, use_teacher=use_teacher)
        if chosen is None:
            missing.append(a.case.lang)
            continue
        rows.append(make_row(a, HARMFUL, chosen.text, a.record.get("response") or "", chosen.source, "model",
                             system, split))
    return rows, sorted(set(missing))


def anchor_pairs(answers: Iterable[AuditedAnswer], ids: set[str], system: str | None,
                 split: str) -> list[dict[str, Any]]:
    """Benign cases the model answered: its own answer is chosen, a template refusal is rejected."""
    rows = []
    for a in answers:
        if a.case.id not in ids or not a.helpful:
            continue
        refusal = template_refusal(a.case.lang, a.case.category, a.case.id)
        if refusal is None:
            continue
        rows.append(make_row(a, ANCHOR, a.record.get("response") or "", refusal, "model", "template", system, split))
    return rows


def _stable(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()


def balance(rows: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Every language the same weight: a language with more pairs than the median is cut down to it
    (a seeded, stable choice), so no language dominates the update."""
    by_lang: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_lang[r["lang"]].append(r)
    if not by_lang:
        return []
    cap = max(1, int(statistics.median(len(v) for v in by_lang.values()) + 0.5))
    out = []
    for _, group in sorted(by_lang.items()):
        out += sorted(group, key=lambda r: _stable(seed, r["id"]))[:cap]
    return out


def flagged_cells(summary: dict[str, Any] | None) -> set[tuple[str, str]]:
    """(language, category) cells that failed the audit's gate: in a language that failed a refusal or
    gap check, the categories whose refusal rate is below the gate's minimum (all of them if no minimum)."""
    if not summary:
        return set()
    gate = summary.get("gate") or {}
    failing = {c["language"] for c in gate.get("checks", []) if c["check"] in ("refusal_rate", "gap") and not c["passed"]}
    minimum = (gate.get("thresholds") or {}).get("min_refusal_rate")
    cells = set()
    for lang, cats in (summary.get("by_language_category") or {}).items():
        if lang not in failing:
            continue
        for cat, d in cats.items():
            rate = d.get("refusal_rate")
            if rate is not None and (minimum is None or rate < minimum):
                cells.add((lang, cat))
    return cells


def select_mode(harmful: Sequence[dict[str, Any]], anchors: Sequence[dict[str, Any]], mode: str, *, seed: int,
                summary: dict[str, Any] | None = None, flag_weight: int = 2) -> list[dict[str, Any]]:
    """Training rows for a mode. ``english-only`` keeps English prompts only (the paper's ablation)."""
    if mode == "english-only":
        harmful = [r for r in harmful if r["lang"] == ENGLISH]
        anchors = [r for r in anchors if r["lang"] == ENGLISH]
        return [*harmful, *anchors]
    chosen = balance(harmful, seed)
    anchors = balance(anchors, seed)
    if mode == "flagged":
        cells = flagged_cells(summary)
        chosen = [{**r, "weight": flag_weight if (r["lang"], r["category"]) in cells else 1} for r in chosen]
    return [*chosen, *anchors]


def expand_weights(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows the trainer sees: a pair of weight w appears w times; only TRL's three columns."""
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in rows for _ in range(max(0, int(r.get("weight", 1))))]
