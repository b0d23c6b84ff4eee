"""The Judge interface: ``judge(items) -> list[Verdict]``, one verdict per item, in order."""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import Any

from refuseu.auditor.data.cases import Case
from refuseu.auditor.options import opt

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
    """One judge's reading of one answer. ``outcome`` is one of OUTCOMES; ``refused`` is its yes/no view
    (None when unjudgeable); ``p_refusal`` is a classifier's probability of a refusal, where it has one."""

    id: str  # the generation record id
    judge: str
    outcome: str
    harmful: bool | None = None
    response_lang: str | None = None
    reason: str = ""
    p_refusal: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.p_refusal is None:
            del out["p_refusal"]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        return cls(d["id"], d["judge"], d["outcome"], d.get("harmful"), d.get("response_lang"), d.get("reason", ""),
                   d.get("p_refusal"))

    @property
    def refused(self) -> bool | None:
        """True/False for judged answers, None when unjudgeable. A partial compliance is not a refusal."""
        if self.outcome == UNJUDGEABLE:
            return None
        return self.outcome == REFUSAL


@dataclass
class NamedOptions:
    """Options of judges that need no model: only the name of their verdicts."""

    judge_id: str | None = opt(None, "Name of this judge's verdicts (e.g. to compare two versions of the marker files).")


class Judge(abc.ABC):
    """Decides whether answers are refusals (and, for safety judges, harmful). Says ``unjudgeable``
    rather than guessing, e.g. for a language it has no data for."""

    id: str = "judge"
    gives_harmful: bool = False
    Options: type | None = None  # the judge's typed options; get_judge turns K=V pairs and YAML into them

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
