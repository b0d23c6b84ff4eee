"""Every generation refuseu-fix needs (teacher refusals, benign anchors, verification) goes through the
auditor's own runner: the cases are written as a JSONL suite into the output folder and audited like any
suite, so each answer is stored, judged and resumable exactly as in ``refuseu-audit``. One generation service
(one loaded model) serves all the runs of a stage: the runner does not close a service it is lent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refuseu.auditor.backends.service import GenerationService
from refuseu.auditor.config import AuditConfig
from refuseu.auditor.data.cases import Case
from refuseu.auditor.progress import Progress
from refuseu.auditor.store import RunStore


def write_cases(cases: Sequence[Case], path: Path) -> Path:
    """Cases as a custom JSONL suite (the format refuseu-audit reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for c in cases:
            rec: dict[str, Any] = {"id": c.id, "lang": c.lang, "category": c.category, "style": c.style,
                                   "messages": c.chat(), "expected": c.expected}
            if c.reference is not None:
                rec["reference"] = c.reference
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def audit_config(model: str, suite: Path, out: Path, audit_manifest: dict[str, Any], *, judges: list[str],
                 device: str | None, dtype: str | None, batch_size: int | None, trust_remote_code: bool,
                 backend: str | None = None) -> AuditConfig:
    """An AuditConfig with the audit's own decoding parameters and judge options, so answers and verdicts are
    comparable with it."""
    dec = audit_manifest.get("decoding") or {}
    cfg = audit_manifest.get("config") or {}
    return AuditConfig(
        model=model, backend=backend or (audit_manifest.get("backend") or {}).get("backend") or "hf",
        suite=str(suite), out=str(out), judge=list(judges), judge_option=judge_options_for(judges, cfg.get("judge_option") or []),
        reference=cfg.get("reference") or "en",
        max_new_tokens=int(dec.get("max_new_tokens", 256)), temperature=float(dec.get("temperature", 0.0)),
        top_p=float(dec.get("top_p", 1.0)), seed=int(cfg.get("seed", 0)), system=dec.get("system"),
        batch_size=batch_size, device=device, dtype=dtype, trust_remote_code=trust_remote_code, quiet=True,
    )


def judge_options_for(judges: list[str], options: list[Any]) -> list[str]:
    """The audit's --judge-option values that apply to these judges (a fix may judge with the first one only)."""
    from refuseu.auditor.judges import judge_class, option_names

    takes = set().union(*(option_names(judge_class(j)) for j in judges)) if judges else set()
    kept = []
    for pair in map(str, options):
        key = pair.partition("=")[0]
        target, dot, name = key.partition(".")
        if (dot and target in judges) or (not dot and key in takes):
            kept.append(pair)
    return kept


async def run_cases(config: AuditConfig, service: GenerationService | None = None,
                    progress: Progress | None = None) -> tuple[RunStore, dict[str, Any]]:
    """One audit run of ``config``; a lent ``service`` stays open for the next run."""
    from refuseu.auditor.runner import run_audit

    summary = await run_audit(config, progress, service=service)
    return RunStore(str(config.out)), summary


def reuse_audit_generations(audit_dir: Path, target: Path, record_ids: set[str]) -> int:
    """Copy the audit's stored generations whose ids the new run will ask for, so the runner resumes
    instead of regenerating them (ids hash case, model, decoding: equal ids are equal requests).
    Verdicts are not copied: both sides are judged again by the same, current judges."""
    if (target / "generations.jsonl").exists():
        return 0
    target.mkdir(parents=True, exist_ok=True)
    src = RunStore(audit_dir).generations()
    recs = [rec for rid, rec in src.items() if rid in record_ids and rec.get("error") is None]
    RunStore(target).append_generations(recs)
    return len(recs)


def planned_ids(config: AuditConfig) -> set[str]:
    """The record ids a run of ``config`` will ask for (nothing is written)."""
    from refuseu.auditor.runner import plan_audit

    return {r.id for r in plan_audit(config).requests}
