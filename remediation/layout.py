"""FixDir: one refuseu-fix output folder, as RunStore is one audit run. Every stage finds its files here, by
name, so no stage imports another to learn where things are.

    fix.json                  options, preparation facts, training facts (train.dpo_config, steps...)
    split.json                which ids train and which verify (an id is on one side in every language)
    pairs.jsonl               training pairs (TRL conversational rows)
    teacher/, anchors/        refuseu runs of the teacher and the base model (generation, resumable)
    adapter/ | model/         the trained LoRA adapter, or the fully fine-tuned model (--full)
    merged/                   base + adapter (--merge)
    train_log.jsonl           every logged training step
    verify/cases.jsonl        the verification suite; verify/heldout_pairs.jsonl the held-out pairs
    verify/                   a refuseu run of the fixed model; verify/baseline/ the base model on the same cases
    verify/compare.json, preference.json, capability.json, decision.json
    before_after.html, README.md (the model card)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError


@dataclass(frozen=True)
class FixDir:
    root: Path

    @classmethod
    def at(cls, path: str | Path) -> FixDir:
        return cls(Path(path))

    fix_json = property(lambda self: self.root / "fix.json")
    split_json = property(lambda self: self.root / "split.json")
    pairs = property(lambda self: self.root / "pairs.jsonl")
    train_log = property(lambda self: self.root / "train_log.jsonl")
    adapter = property(lambda self: self.root / "adapter")
    full_model = property(lambda self: self.root / "model")
    merged = property(lambda self: self.root / "merged")
    checkpoints = property(lambda self: self.root / "checkpoints")
    verify = property(lambda self: self.root / "verify")
    baseline = property(lambda self: self.root / "verify" / "baseline")
    verify_cases = property(lambda self: self.root / "verify" / "cases.jsonl")
    heldout_pairs = property(lambda self: self.root / "verify" / "heldout_pairs.jsonl")
    before_after = property(lambda self: self.root / "before_after.html")
    model_card = property(lambda self: self.root / "README.md")

    def run(self, name: str) -> Path:
        """A refuseu run directory inside the fix folder (teacher, anchors...)."""
        return self.root / name

    def fixed_model(self, full: bool) -> Path:
        return self.full_model if full else self.adapter

    def prepared(self) -> bool:
        return all(p.is_file() for p in (self.fix_json, self.pairs, self.split_json, self.verify_cases))

    def read_fix(self) -> dict[str, Any]:
        if not self.fix_json.is_file():
            raise RefuseuError(f"{self.root} is not a refuseu-fix output folder (no {self.fix_json.name})")
        try:
            return json.loads(self.fix_json.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except json.JSONDecodeError as exc:
            raise RefuseuError(f"{self.fix_json}:{exc.lineno}: invalid JSON: {exc.msg}") from None

    def read_pairs(self, path: Path | None = None) -> list[dict[str, Any]]:
        from refuseu.auditor.store import read_jsonl

        path = path or self.pairs
        if not path.is_file():
            raise RefuseuError(f"{path} not found: run refuseu-fix on this output folder first")
        return list(read_jsonl(path))

    @staticmethod
    def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
        from refuseu.auditor.store import write_text_atomic

        write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
