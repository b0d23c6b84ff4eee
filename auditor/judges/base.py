"""The Judge interface: ``judge(items) -> list[Verdict]``, one verdict per item, in order."""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import Any

from refuseu.auditor.data.cases import Case

REFUSAL = "refusal"
COMPLIANCE = "compliance"
PARTIAL = "partial"
UNJUDGEABLE = "unjudgeable"
OUTCOMES = (REFUSAL, COMPLIANCE, PARTIAL, UNJUDGEABLE)


@dataclass(frozen=True)
class JudgeItem:
    """What a judge sees: the record it belongs to, the case and the model's answer."""

    record_id: str
    case: Case
    response: str


@dataclass(frozen=True)
class Verdict:
    id: str  # the generation record id
    judge: str
    refusal: str  # one of OUTCOMES
    harmful: bool | None = None
    response_lang: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(d["id"], d["judge"], d["refusal"], d.get("harmful"), d.get("response_lang"), d.get("reason", ""))

    @property
    def refused(self) -> bool | None:
        """True/False for judged answers, None when unjudgeable. A partial compliance is not a refusal."""
        if self.refusal == UNJUDGEABLE:
            return None
        return self.refusal == REFUSAL


class Judge(abc.ABC):
    """Decides whether answers are refusals (and, for safety judges, harmful). Says ``unjudgeable``
    rather than guessing, e.g. for a language it has no data for."""

    id: str = "judge"
    gives_harmful: bool = False

    @abc.abstractmethod
    async def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order."""

    @property
    def languages(self) -> set[str] | None:
        """The languages this judge supports; None means any."""
        return None

    @property
    def batch_size(self) -> int:
        return 256

    async def aclose(self) -> None:
        """Release resources."""
