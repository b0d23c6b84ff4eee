"""Judges, registered lazily as "name": "module:Class"; packages add their own through the entry point group
``refuseu.judges``. Each judge class names its typed ``Options``; ``get_judge`` turns option mappings (from
``--judge-option K=V``, a YAML file or code) into them, so an option a judge does not take is one clear error."""

from __future__ import annotations

import dataclasses
from typing import Any

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.judges.base import COMPLIANCE, PARTIAL, REFUSAL, UNJUDGEABLE, Judge, JudgeItem, Verdict

GROUP = "refuseu.judges"
JUDGES: dict[str, str] = {
    "classifier": "refuseu.auditor.judges.classifier:ClassifierJudge",
    "markers": "refuseu.auditor.judges.markers:MarkersJudge",
    "language": "refuseu.auditor.judges.langid:LanguageJudge",
    "guard": "refuseu.auditor.judges.guard:GuardJudge",
    "llm": "refuseu.auditor.judges.llm:LLMJudge",
    "paper": "refuseu.auditor.judges.paper:PaperJudge",
}


def judge_class(name: str) -> type[Judge]:
    from refuseu.auditor.registry import lookup

    return lookup(JUDGES, name, "judge", GROUP)  # type: ignore[no-any-return]


def option_names(cls: type[Judge]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls.Options)} if cls.Options is not None else set()


def get_judge(name: str, **options: Any) -> Judge:
    """A judge with its options checked and typed against its ``Options`` class."""
    from refuseu.auditor.options import from_mapping

    cls = judge_class(name)
    known = option_names(cls)
    unknown = sorted(set(options) - known)
    if unknown:
        raise RefuseuError(f"judge '{name}' does not take these options ({', '.join(unknown)}): unknown option "
                           f"'{unknown[0]}'; it takes: {', '.join(sorted(known)) or 'none'}")
    if cls.Options is None:
        return cls()
    typed: Any = from_mapping(cls.Options, options, f"judge '{name}'")
    return cls(**{f.name: getattr(typed, f.name) for f in dataclasses.fields(typed) if f.name in options})


def build_judges(names: list[str], pairs: list[str]) -> list[Judge]:
    """The judges of a run from ``--judge`` and ``--judge-option``: ``NAME.K=V`` goes to judge NAME (which must take
    it); a plain ``K=V`` goes to every judge that takes K, and is an error when none does."""
    from refuseu.auditor.options import parse_pairs

    classes = {name: judge_class(name) for name in names}
    plain = parse_pairs([p for p in pairs if "." not in p.partition("=")[0]], "--judge-option")
    targeted: dict[str, dict[str, Any]] = {}
    for p in pairs:
        key = p.partition("=")[0]
        if "." in key:
            target = key.partition(".")[0]
            if target not in classes:
                raise RefuseuError(f"--judge-option {p}: judge '{target}' is not among --judge ({', '.join(names)})")
            targeted.setdefault(target, {}).update(parse_pairs([p.partition(".")[2]], "--judge-option"))
    unused = [k for k in plain if not any(k in option_names(c) for c in classes.values())]
    if unused:
        raise RefuseuError(f"--judge-option {unused[0]}: none of the judges ({', '.join(names)}) takes it")
    return [get_judge(name, **{**{k: v for k, v in plain.items() if k in option_names(cls)}, **targeted.get(name, {})})
            for name, cls in classes.items()]


__all__ = ["COMPLIANCE", "JUDGES", "PARTIAL", "REFUSAL", "UNJUDGEABLE", "Judge", "JudgeItem", "Verdict", "build_judges",
           "get_judge", "judge_class"]
