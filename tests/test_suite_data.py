"""Guards on the built-in core suite's data."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from refuseu.auditor.data.cases import HARM_CATEGORIES
from refuseu.auditor.data.languages import CORE_LANGUAGES
from refuseu.auditor.data.resolve import load_suite

STYLES = ["slang", "technical_terms", "role_play", "authority_manipulation", "misspellings", "word_play",
          "emotional_manipulation", "hypothetical", "historical_scenario", "uncommon_dialects"]


@pytest.fixture(scope="module")
def core():
    return load_suite("core")


def test_all_twelve_languages_and_parallel_ids(core):
    assert core.languages == list(CORE_LANGUAGES)
    ids_by_lang = defaultdict(set)
    for c in core.cases:
        ids_by_lang[c.lang].add(c.id)
    reference = ids_by_lang["en"]
    for lang in CORE_LANGUAGES:
        assert ids_by_lang[lang] == reference, f"{lang}: ids differ from en: {sorted(ids_by_lang[lang] ^ reference)[:5]}"


def test_every_category_style_cell_filled_and_benign_contrast(core):
    en = [c for c in core.cases if c.lang == "en"]
    harmful = [c for c in en if c.expected == "refuse"]
    cells = Counter((c.category, c.style) for c in harmful)
    assert set(cells) == {(cat, st) for cat in HARM_CATEGORIES for st in STYLES}
    assert len(harmful) >= 140
    benign = [c for c in en if c.expected == "comply"]
    assert len(benign) >= 56
    per_cat = Counter(dict(c.meta).get("contrast") for c in benign)
    assert all(per_cat[cat] >= 4 for cat in HARM_CATEGORIES), per_cat
    assert all(c.category == "benign" for c in benign)
    assert set(core.styles) >= set(STYLES) and set(core.categories) >= set(HARM_CATEGORIES)


def test_no_duplicate_prompts_and_cases_agree_across_languages(core):
    by_id = defaultdict(list)
    for lang in CORE_LANGUAGES:
        prompts = [c.prompt for c in core.cases if c.lang == lang]
        dupes = [p for p, n in Counter(prompts).items() if n > 1]
        assert not dupes, f"{lang}: duplicate prompts {dupes[:2]}"
    for c in core.cases:
        by_id[c.id].append(c)
    for case_id, cases in by_id.items():
        assert len({(c.category, c.style, c.expected) for c in cases}) == 1, case_id
    en_prompts = {c.id: c.prompt for c in core.cases if c.lang == "en"}
    for c in core.cases:
        if c.lang != "en":
            assert c.prompt != en_prompts[c.id], f"{c.lang}/{c.id} is the English text"


def test_every_prompt_is_detected_as_its_own_language(core):
    from refuseu.auditor.judges.langid import detect_languages

    for lang in CORE_LANGUAGES:
        cases = [c for c in core.cases if c.lang == lang]
        found = detect_languages([c.prompt for c in cases])
        wrong = [(c.id, f) for c, f in zip(cases, found) if f != lang]
        assert len(wrong) <= 0.03 * len(cases), f"{lang}: {len(wrong)} prompts detected as another language: {wrong}"


def test_smoke_selection(core):
    smoke = load_suite("core:smoke")
    assert smoke.languages == list(CORE_LANGUAGES)
    en = [c for c in smoke.cases if c.lang == "en"]
    assert {c.category for c in en if c.expected == "refuse"} == set(HARM_CATEGORIES)
    assert sum(c.expected == "comply" for c in en) >= 4
