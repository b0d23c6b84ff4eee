"""Read an audit run for refuseu-fix, check it belongs to MODEL, and split its ids into train and verify.

The split is by case id across all languages: a held-out id is held out in every language, so nothing
the fix trains on, in any language, is ever used to verify it. It is a hash of (seed, id), stratified by
category, so it is deterministic, independent of file order, and recorded in ``split.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refuseu.auditor.data.cases import BENIGN, Case
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.judges.base import REFUSAL, UNJUDGEABLE
from refuseu.auditor.store import RunStore


@dataclass(frozen=True)
class AuditedAnswer:
    """One audited generation with its primary verdict."""

    record: dict[str, Any]
    case: Case
    outcome: str | None  # refusal / compliance / partial / unjudgeable; None when not judged

    @property
    def complied(self) -> bool:
        """A harmful case the model did not refuse: a compliance, a partial compliance, or a non-empty answer
        the judge could not judge (babble, or an answer in another language). Each is worth replacing
        with a refusal in the prompt's language."""
        if not self.case.harmful or self.outcome in (None, REFUSAL):
            return False
        return self.outcome != UNJUDGEABLE or bool((self.record.get("response") or "").strip())

    @property
    def helpful(self) -> bool:
        """A benign case answered (not refused), with some text."""
        return (not self.case.harmful) and self.outcome not in (None, REFUSAL, UNJUDGEABLE) and bool(
            (self.record.get("response") or "").strip())


@dataclass
class AuditRun:
    dir: Path
    manifest: dict[str, Any]
    answers: list[AuditedAnswer]
    summary: dict[str, Any] | None

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(a.case.lang for a in self.answers))

    @property
    def judges(self) -> list[str]:
        return list(self.manifest.get("judges") or [self.manifest.get("judge", "markers")])


def answers_of(generations: dict[str, dict[str, Any]], verdicts: dict[str, dict[str, Any]]) -> list[AuditedAnswer]:
    """The answered records (errors left out) with their cases and their verdicts' outcomes."""
    from refuseu.auditor.runner import case_of_record

    out = []
    for rid, rec in generations.items():
        if rec.get("error") is None:
            v = verdicts.get(rid)
            out.append(AuditedAnswer(rec, case_of_record(rec), None if v is None else v["outcome"]))
    return out


def _identity(model: str) -> str:
    """What a MODEL string points at, so './m' and '/abs/m' (or an alias and its file) compare equal."""
    from refuseu.auditor.models.resolve import resolve_model

    try:
        return resolve_model(model).source
    except RefuseuError:
        return model


def load_audit(directory: str, model: str) -> AuditRun:
    if not directory:
        raise RefuseuError("--audit is required: the audit run directory of MODEL (refuseu-audit MODEL --out DIR)")
    path = Path(directory)
    if not path.exists():
        raise RefuseuError(f"--audit: audit directory not found: {directory}")
    if not path.is_dir() or not (path / "manifest.json").is_file():
        raise RefuseuError(f"--audit: {directory} is not a refuseu audit run (no manifest.json)")
    store = RunStore(path)
    manifest = store.read_manifest()
    audited = str(manifest.get("model") or "")
    if audited != model and _identity(audited) != _identity(model):
        raise RefuseuError(
            f"--audit: {directory} is an audit of '{audited}', not of '{model}'. Audit this model first "
            f"(refuseu-audit {model} --out DIR) or pass the model that was audited"
        )
    if manifest.get("status") not in (None, "complete"):
        raise RefuseuError(f"--audit: the audit in {directory} did not finish (status '{manifest.get('status')}'); "
                           "rerun the same refuseu-audit command to complete it")
    generations = store.generations()
    if not generations:
        raise RefuseuError(f"--audit: {directory} holds no generations")
    verdicts = store.verdicts()
    if not verdicts:
        raise RefuseuError(f"--audit: {directory} holds no verdicts; rerun the refuseu-audit command to judge it")
    answers = answers_of(generations, verdicts)
    summary = None
    if (path / "summary.json").is_file():
        import json

        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    return AuditRun(path, manifest, answers, summary)


def _rank(seed: int, case_id: str) -> str:
    return hashlib.sha256(f"{seed}|{case_id}".encode()).hexdigest()


def split_ids(ids_by_category: dict[str, list[str]], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, verify ids). Categories are visited in a seeded order and each holds out its share of
    the running total (systematic sampling), so single-id categories alternate between the sides and a
    category with 2+ ids always has one on each side. Within a category, ids are ordered by hash."""
    if not 0 < holdout < 1:
        raise RefuseuError(f"--holdout must be between 0 and 1 (exclusive), got {holdout}")
    train: list[str] = []
    verify: list[str] = []
    seen = taken = 0
    for cat in sorted(ids_by_category, key=lambda c: _rank(seed, "category:" + c)):
        ordered = sorted(set(ids_by_category[cat]), key=lambda i: _rank(seed, i))
        seen += len(ordered)
        k = min(max(round(holdout * seen) - taken, 0), len(ordered))
        if len(ordered) >= 2:
            k = min(max(k, 1), len(ordered) - 1)
        taken += k
        verify += ordered[:k]
        train += ordered[k:]
    return sorted(train), sorted(verify)


def audit_split(run: AuditRun, holdout: float, seed: int) -> tuple[list[str], list[str]]:
    by_cat: dict[str, list[str]] = {}
    for a in run.answers:
        by_cat.setdefault(a.case.category, []).append(a.case.id)
    return split_ids(by_cat, holdout, seed)


def extra_benign_ids(suite_cases: list[Case], exclude: set[str], n_anchor: int, n_verify: int,
                     seed: int) -> tuple[list[str], list[str]]:
    """Benign suite ids outside the audit: (anchor ids for training, extra ids for verification), disjoint."""
    ids = sorted({c.id for c in suite_cases if c.category == BENIGN and c.id not in exclude},
                 key=lambda i: _rank(seed + 1, i))
    verify = ids[:n_verify]
    anchors = ids[n_verify:n_verify + n_anchor]
    return sorted(anchors), sorted(verify)
