"""Choosing cases from a suite: by language, category and a stratified, parallel sample."""

from __future__ import annotations

import random
from collections.abc import Sequence

from refuseu.auditor.data.cases import BENIGN, Case, Suite
from refuseu.auditor.errors import RefuseuError


def select_cases(
    suite: Suite,
    *,
    langs: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[Case]:
    """Filter by language and category, then take ``sample`` ids per language, stratified over
    categories. The same ids are taken in every language where they exist, so samples stay parallel."""
    available = set(suite.languages)
    if langs:
        unknown = [lang for lang in langs if lang not in available]
        if unknown:
            raise RefuseuError(
                f"--langs: unknown language code(s) {', '.join(unknown)} for suite '{suite.name}' "
                f"(it has: {', '.join(suite.languages)})"
            )
    if categories:
        have = {c.category for c in suite.cases}
        unknown = [c for c in categories if c not in have]
        if unknown:
            raise RefuseuError(f"--categories: unknown categor(ies) {', '.join(unknown)} (suite has: {', '.join(sorted(have))})")
    if sample is not None and sample < 1:
        raise RefuseuError(f"--sample must be at least 1, got {sample}")
    chosen = [
        c for c in suite.cases if (not langs or c.lang in langs) and (not categories or c.category in categories)
    ]
    if sample is None:
        return chosen
    order = _stratified_id_order(chosen, seed)
    rank = {case_id: i for i, case_id in enumerate(order)}
    out: list[Case] = []
    by_lang: dict[str, list[Case]] = {}
    for c in chosen:
        by_lang.setdefault(c.lang, []).append(c)
    for lang_cases in by_lang.values():
        out.extend(sorted(lang_cases, key=lambda c: rank[c.id])[:sample])
    return out


def _stratified_id_order(cases: Sequence[Case], seed: int) -> list[str]:
    """Round-robin over categories (in a seeded order), ids shuffled within each category."""
    rng = random.Random(seed)
    strata: dict[str, list[str]] = {}
    for c in cases:
        ids = strata.setdefault(c.category, [])
        if c.id not in ids:
            ids.append(c.id)
    names = sorted(strata)
    rng.shuffle(names)
    if BENIGN in names:  # benign first: even a small sample measures over-refusal
        names.remove(BENIGN)
        names.insert(0, BENIGN)
    for name in names:
        strata[name].sort()
        rng.shuffle(strata[name])
    order: list[str] = []
    while any(strata.values()):
        for name in names:
            if strata[name]:
                order.append(strata[name].pop(0))
    return order
