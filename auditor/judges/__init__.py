"""Judges, registered lazily as "name": "module:Class"."""

from __future__ import annotations

from typing import Any

from refuseu.auditor.judges.base import COMPLIANCE, PARTIAL, REFUSAL, UNJUDGEABLE, Judge, JudgeItem, Verdict

JUDGES: dict[str, str] = {
    "markers": "refuseu.auditor.judges.markers:MarkersJudge",
    "language": "refuseu.auditor.judges.langid:LanguageJudge",
    "guard": "refuseu.auditor.judges.guard:GuardJudge",
    "llm": "refuseu.auditor.judges.llm:LLMJudge",
    "paper": "refuseu.auditor.judges.paper:PaperJudge",
}


def get_judge(name: str, **options: Any) -> Judge:
    from refuseu.auditor.registry import lookup

    cls = lookup(JUDGES, name, "judge")
    return cls(**options)  # type: ignore[no-any-return]


__all__ = ["COMPLIANCE", "JUDGES", "PARTIAL", "REFUSAL", "UNJUDGEABLE", "Judge", "JudgeItem", "Verdict", "get_judge"]
