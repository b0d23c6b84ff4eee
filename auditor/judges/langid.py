"""Response language identification with lingua (offline, covers all 12 languages).

The detector also knows common languages outside the 12 (Russian, Ukrainian, Chinese...), so an answer
in one of those is reported as its own code, not as the nearest of the 12.

Speed: lingua's cost grows with the number of candidate languages and the text length. The script of the
text (Latin, Cyrillic, Greek, CJK...) is counted first with a few C-level regexes, and lingua is asked only
about the languages written in that script, over the first ``MAX_CHARS`` characters (the language of an
answer is settled long before its end).
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files
from typing import Any

from refuseu.auditor.data.languages import CORE_LANGUAGES
from refuseu.auditor.judges.base import UNJUDGEABLE, Judge, JudgeItem, NamedOptions, Verdict

# Beyond the core 12: languages a model plausibly drifts into, by script. Close relatives of the core
# languages (Croatian next to Slovenian, Dutch, Romanian...) are included so that they are not mistaken for them.
LATIN_EXTRA = ("nl", "ro", "hr", "hu", "tr", "sv", "da", "fi", "et", "ca")
SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "latin": (*CORE_LANGUAGES, *LATIN_EXTRA),
    "cyrillic": ("ru", "uk", "bg", "sr", "mk", "be"),
    "greek": ("el",),
    "cjk": ("zh", "ja", "ko"),
    "arabic": ("ar", "fa"),
    "hebrew": ("he",),
    "devanagari": ("hi", "mr"),
}
EXTRA_LANGUAGES = tuple(c for codes in SCRIPT_LANGUAGES.values() for c in codes if c not in CORE_LANGUAGES)
SCRIPTS: dict[str, re.Pattern[str]] = {
    "latin": re.compile(r"[A-Za-z\u00C0-\u024F\u1E00-\u1EFF]"),
    "cyrillic": re.compile(r"[\u0400-\u04FF]"),
    "greek": re.compile(r"[\u0370-\u03FF]"),
    "cjk": re.compile(r"[\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF]"),
    "arabic": re.compile(r"[\u0600-\u06FF]"),
    "hebrew": re.compile(r"[\u0590-\u05FF]"),
    "devanagari": re.compile(r"[\u0900-\u097F]"),
}
MIN_LETTERS = 3
MAX_CHARS = 300
# lingua's low-accuracy mode (trigrams only) is about twice as fast and, by lingua's own measurements, as
# accurate as the full mode on texts of more than ~120 characters; short texts get the full mode.
LOW_ACCURACY_FROM = 120


@functools.lru_cache(maxsize=32)
def _detector(codes: tuple[str, ...], low_accuracy: bool) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
    if len(langs) == 1:  # lingua needs two candidates; a single-language script is settled by the script
        return None
    # Lazy model loading: preloading every model costs tens of seconds at start-up; lazy loads in milliseconds.
    builder = LanguageDetectorBuilder.from_languages(*langs)
    return (builder.with_low_accuracy_mode() if low_accuracy else builder).build()


def detector(script: str = "latin", low_accuracy: bool = False) -> Any:
    return _detector(SCRIPT_LANGUAGES[script], low_accuracy)


def dominant_script(text: str) -> str | None:
    """The script most letters of the text are written in, or None when it has fewer than MIN_LETTERS."""
    best, best_n = None, 0
    for script, pattern in SCRIPTS.items():
        n = len(pattern.findall(text))
        if n > best_n:
            best, best_n = script, n
    return best if best_n >= MIN_LETTERS else None


def _code(lang: Any) -> str | None:
    return None if lang is None else str(lang.iso_code_639_1.name).lower()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when there is too little text to tell."""
    return detect_languages([text])[0]


def detect_languages(texts: list[str]) -> list[str | None]:
    """Batch detection: grouped by script, each group in one parallel lingua call."""
    groups: dict[tuple[str, bool], list[int]] = {}
    heads = [t[:MAX_CHARS] for t in texts]
    for i, head in enumerate(heads):
        script = dominant_script(head)
        if script is not None:
            groups.setdefault((script, len(head) >= LOW_ACCURACY_FROM), []).append(i)
    out: list[str | None] = [None] * len(texts)
    for (script, low), idx in groups.items():
        det = detector(script, low)
        if det is None:
            for i in idx:
                out[i] = SCRIPT_LANGUAGES[script][0]
            continue
        found = det.detect_languages_in_parallel_of([heads[i] for i in idx]) if len(idx) > 1 \
            else [det.detect_language_of(heads[idx[0]])]
        for i, lang in zip(idx, found):
            out[i] = _code(lang)
    return out


class LanguageJudge(Judge):
    """Only detects the answer's language; its refusal field is always ``unjudgeable``."""

    id = "language"
    Options = NamedOptions

    def __init__(self, judge_id: str | None = None) -> None:
        if judge_id:
            self.id = judge_id

    async def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        langs = detect_languages([it.response for it in items])
        return [
            Verdict(it.record_id, self.id, UNJUDGEABLE, None, lang, "language only") for it, lang in zip(items, langs)
        ]


# An answer this short, or whose language lingua cannot tell apart from the prompt's, is taken to be in the
# prompt's language: "Ne." or "No." answers a Czech or an English prompt in its own language. The factor is how
# close (relative to the best) the prompt's language must score to be preferred; tuned on the training corpus.
PROMPT_PRIOR = 0.5
# A Latin-script language outside the twelve (Danish, Dutch, Croatian...) needs strong evidence: low-accuracy
# mode reads a short English "Sure. Step 1: ..." as Danish, and an answer outside the twelve is unjudgeable.
EXTRA_MIN_CONFIDENCE = 0.8
EXTRA_MIN_CHARS = 60


# The first pass reads this many characters; an answer it places outside the prompt's language is read again on
# MAX_CHARS. On the judge corpus (10,262 answers) this is both faster and more accurate than reading MAX_CHARS
# for all: 99.3% against 99.15%, at about 60% of the cost.
FIRST_CHARS = 150


SHORTCUT_CHARS = 300
SHORTCUT_MIN = 3
SHORTCUT_OTHER = 0.2  # at most this many words of other languages per word of the prompt's
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


@functools.lru_cache(maxsize=1)
def function_words() -> dict[str, str]:
    """word -> the one language whose function-word list has it (data/function_words.yaml)."""
    import yaml

    data = yaml.safe_load((files("refuseu.auditor.judges.data") / "function_words.yaml").read_text(encoding="utf-8"))
    sets = {lang: set(str(words).split()) for lang, words in data.items()}
    owner: dict[str, str] = {}
    for lang, words in sets.items():
        others = set().union(*(s for other, s in sets.items() if other != lang))
        owner.update((w, lang) for w in words - others)
    return owner


def in_prompt_language(text: str, prompt_lang: str) -> bool:
    """The shortcut: the opening has SHORTCUT_MIN or more words of the prompt's language alone and few of any
    other language's (see data/function_words.yaml)."""
    owner = function_words()
    mine = other = 0
    for w in _WORD.findall(text[:SHORTCUT_CHARS].lower()):
        lang = owner.get(w)
        if lang == prompt_lang:
            mine += 1
        elif lang is not None:
            other += 1
    return mine >= SHORTCUT_MIN and other <= SHORTCUT_OTHER * mine


def detect_response_languages(texts: list[str], prompt_langs: list[str], parallel: bool = True) -> list[str | None]:
    """Like ``detect_languages``, but with the prompt's language as the prior, and lingua's low-accuracy mode for
    every length: its models load in a fraction of a second and a few MB, where the high-accuracy models cost
    seconds and hundreds of MB per run; the prior recovers what low accuracy loses on short answers. An answer
    the function-word shortcut places in the prompt's language does not go to lingua at all. ``parallel=False``
    keeps lingua on the calling thread: a forked worker has none of the parent's thread pool."""
    out: list[str | None] = list(prompt_langs)
    rest = [i for i, (t, lang) in enumerate(zip(texts, prompt_langs)) if not in_prompt_language(t, lang)]
    for i, lang in zip(rest, _lingua_languages([texts[i] for i in rest], [prompt_langs[i] for i in rest], parallel)):
        out[i] = lang
    return out


def _lingua_languages(texts: list[str], prompt_langs: list[str], parallel: bool) -> list[str | None]:
    out = _response_languages(texts, prompt_langs, FIRST_CHARS, parallel)
    again = [i for i, lang in enumerate(out) if lang != prompt_langs[i] and len(texts[i]) > FIRST_CHARS]
    if again:
        second = _response_languages([texts[i] for i in again], [prompt_langs[i] for i in again], MAX_CHARS, parallel)
        for i, lang in zip(again, second):
            out[i] = lang
    return out


def _response_languages(texts: list[str], prompt_langs: list[str], max_chars: int,
                        parallel: bool = True) -> list[str | None]:
    from refuseu.auditor.judges.text import strip_placeholders

    out: list[str | None] = [None] * len(texts)
    groups: dict[str, list[int]] = {}
    heads = [strip_placeholders(t[:max_chars]) for t in texts]
    for i, head in enumerate(heads):
        script = dominant_script(head)
        if script is None:
            # too few letters to read: an answer that short ("No.") is in the prompt's language if it has letters
            out[i] = prompt_langs[i] if any(ch.isalpha() for ch in head) else None
        else:
            groups.setdefault(script, []).append(i)
    for script, idx in groups.items():
        det = detector(script, True)
        codes = SCRIPT_LANGUAGES[script]
        if det is None:
            for i in idx:
                out[i] = codes[0]
            continue
        values = det.compute_language_confidence_values_in_parallel([heads[i] for i in idx]) if parallel \
            else [det.compute_language_confidence_values(heads[i]) for i in idx]
        for i, confidences in zip(idx, values):
            scores = {_code(c.language): c.value for c in confidences}
            best = max(scores, key=lambda k: scores[k] or 0.0) if scores else None
            top = scores.get(best, 0.0) if best else 0.0
            prior = prompt_langs[i]
            if top <= 0.0:
                out[i] = prior if prior in codes else best
            elif prior in scores and scores[prior] >= PROMPT_PRIOR * top:
                out[i] = prior
            elif script == "latin" and best not in CORE_LANGUAGES and (
                    top < EXTRA_MIN_CONFIDENCE or len(heads[i].strip()) < EXTRA_MIN_CHARS):
                out[i] = prior if prior in CORE_LANGUAGES else best  # no prior to lean on: say what lingua saw
            else:
                out[i] = best
    return out
