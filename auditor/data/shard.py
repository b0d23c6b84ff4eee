"""``--shard K/N``: a deterministic split of a case selection by case id, for CI matrix jobs or many API keys.

Every language of one id lands in the same shard, so each shard can still compute its cross-lingual leaks.
Ids are dealt round-robin in sorted order, so shards differ in size by at most one id and a shard never
depends on which machine computes it. ``refuseu-audit merge`` joins the shard runs again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from refuseu.auditor.data.cases import Case
from refuseu.auditor.errors import RefuseuError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as CI matrices count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = _SHARD.match(text)
    if not match:
        raise RefuseuError(f"--shard: expected K/N such as 2/8, got '{text}'")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise RefuseuError(f"--shard: K must be between 1 and N (N >= 1), got '{text}'")
    return Shard(index, count)


def shard_ids(ids: Sequence[str], shard: Shard) -> set[str]:
    """The ids of one shard: the sorted unique ids, dealt round-robin."""
    ordered = sorted(set(ids))
    return {case_id for i, case_id in enumerate(ordered) if i % shard.count == shard.index - 1}


def apply_shard(cases: Sequence[Case], shard: Shard) -> list[Case]:
    keep = shard_ids([c.id for c in cases], shard)
    return [c for c in cases if c.id in keep]
