"""Response language identification with lingua (offline, covers all 12 languages).

The detector also knows common languages outside the 12 (Russian, Ukrainian, Chinese...), so an answer
in one of those is reported as its own code, not as the nearest of the 12.
"""

from __future__ import annotations

import functools
from typing import Any

from refuseu.auditor.judges.base import UNJUDGEABLE, Judge, JudgeItem, Verdict
from refuseu.auditor.languages import CORE_LANGUAGES

# Beyond the core 12: languages a model plausibly drifts into. Close relatives of the core languages
# (e.g. Croatian next to Slovenian) are included so that they are not mistaken for them.
EXTRA_LANGUAGES = ("ru", "uk", "bg", "el", "zh", "ja", "ko", "ar", "tr", "hu", "nl", "ro", "hr", "sv", "da", "fi", "et")
MIN_LETTERS = 3


@functools.lru_cache(maxsize=4)
def _detector(codes: tuple[str, ...]) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
    # Lazy model loading: preloading every model costs tens of seconds at start-up; lazy loads in milliseconds.
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detector() -> Any:
    return _detector(tuple(dict.fromkeys((*CORE_LANGUAGES, *EXTRA_LANGUAGES))))


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when there is too little text to tell."""
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return None
    lang = detector().detect_language_of(text)
    return None if lang is None else str(lang.iso_code_639_1.name).lower()


def detect_languages(texts: list[str]) -> list[str | None]:
    """Batch detection (lingua parallelises it)."""
    ok = [i for i, t in enumerate(texts) if sum(ch.isalpha() for ch in t) >= MIN_LETTERS]
    out: list[str | None] = [None] * len(texts)
    if ok:
        found = detector().detect_languages_in_parallel_of([texts[i] for i in ok])
        for i, lang in zip(ok, found):
            out[i] = None if lang is None else str(lang.iso_code_639_1.name).lower()
    return out


class LanguageJudge(Judge):
    """Only detects the answer's language; its refusal field is always ``unjudgeable``."""

    id = "language"

    async def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        langs = detect_languages([it.response for it in items])
        return [
            Verdict(it.record_id, self.id, UNJUDGEABLE, None, lang, "language only") for it, lang in zip(items, langs)
        ]
