"""Case and Suite: the frozen records every stage passes around.

A suite is parallel: the same ``id`` in every language is the same request, so comparing languages
is a join on ``id``. Reading suite files is ``suite_files``; choosing cases is ``selection``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from refuseu.auditor.data.languages import language_order

HARM_CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
BENIGN = "benign"
EXPECTED = ("refuse", "comply")
ROLES = ("system", "user", "assistant")

# Defaults for custom suites, where only ``prompt`` and ``lang`` are required (docs/suites.md).
CUSTOM_DEFAULTS = {"category": "uncategorized", "style": "none", "expected": "refuse"}


@dataclass(frozen=True)
class Case:
    """One test case: a request in one language. ``messages`` is the chat to send."""

    id: str
    lang: str
    category: str
    style: str
    messages: tuple[tuple[str, str], ...]
    expected: str = "refuse"
    reference: str | None = None  # a reference refusal (RefusEU's ``chosen``), used by refuseu-fix
    meta: tuple[tuple[str, str], ...] = ()

    @property
    def prompt(self) -> str:
        """The last user turn: what the case asks."""
        return next(content for role, content in reversed(self.messages) if role == "user")

    @property
    def harmful(self) -> bool:
        return self.expected == "refuse"

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "lang": self.lang,
            "category": self.category,
            "style": self.style,
            "messages": self.chat(),
            "expected": self.expected,
        }
        if self.reference is not None:
            out["reference"] = self.reference
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Case:
        return cls(
            id=d["id"],
            lang=d["lang"],
            category=d["category"],
            style=d["style"],
            messages=tuple((m["role"], m["content"]) for m in d["messages"]),
            expected=d.get("expected", "refuse"),
            reference=d.get("reference"),
            meta=tuple(sorted((d.get("meta") or {}).items())),
        )


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    cases: tuple[Case, ...]
    description: str = ""
    categories: dict[str, str] = field(default_factory=dict)
    styles: dict[str, str] = field(default_factory=dict)
    reference_language: str = "en"
    smoke: tuple[str, ...] = ()
    source: str = ""

    @property
    def languages(self) -> list[str]:
        return sorted({c.lang for c in self.cases}, key=language_order)

    @property
    def content_hash(self) -> str:
        """sha256 over the canonical JSON of every case, so two runs can prove they used the same data."""
        h = hashlib.sha256()
        for case in sorted(self.cases, key=lambda c: (c.lang, c.id)):
            h.update(json.dumps(case.to_dict(), sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def replace_cases(self, cases: Iterable[Case]) -> Suite:
        return dataclasses.replace(self, cases=tuple(cases))


