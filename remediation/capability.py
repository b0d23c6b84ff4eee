"""Capability guard: Global-MMLU accuracy before and after the fix, in the audited languages.

Data: the hub dataset ``CohereLabs/Global-MMLU`` (one config per language, split ``test``), or local files
in its schema: a folder with ``<lang>.jsonl``, ``<lang>.csv`` or ``<lang>.parquet`` holding the columns
``question, option_a, option_b, option_c, option_d, answer`` (answer is A-D; other columns are kept).
Scoring is zero-shot: the question and options through the chat template, then the letter A-D with the
highest next-token log-probability. The same sampled questions are asked before and after.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.registry import require
from refuseu.auditor.textfiles import iter_lines, read_text

HUB_ID = "CohereLabs/Global-MMLU"
LETTERS = ("A", "B", "C", "D")
REQUIRED = ("question", "option_a", "option_b", "option_c", "option_d", "answer")
INSTRUCTION = "Answer with the letter of the correct option (A, B, C or D) only."


def _check_rows(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    out = []
    for n, row in enumerate(rows, start=1):
        for key in REQUIRED:
            if row.get(key) in (None, ""):
                raise RefuseuError(f"{source}:{n}: field '{key}' is missing (Global-MMLU schema)")
        answer = str(row["answer"]).strip().upper()
        if answer not in LETTERS:
            raise RefuseuError(f"{source}:{n}: field 'answer' must be one of A, B, C, D, got {row['answer']!r}")
        out.append({**row, "answer": answer})
    return out


def load_local(directory: str, lang: str) -> list[dict[str, Any]] | None:
    root = Path(directory)
    if not root.is_dir():
        raise RefuseuError(f"--capability-data: folder not found: {directory}")
    for suffix in (".jsonl", ".csv", ".parquet"):
        path = root / f"{lang}{suffix}"
        if not path.is_file():
            continue
        if suffix == ".jsonl":
            rows = []
            for n, line in iter_lines(path):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise RefuseuError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
        elif suffix == ".csv":
            rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
        else:
            rows = require("pyarrow.parquet").read_table(str(path)).to_pylist()
        return _check_rows(rows, str(path))
    return None


def load_hub(lang: str) -> list[dict[str, Any]] | None:
    datasets = require("datasets")
    try:
        ds = datasets.load_dataset(HUB_ID, lang, split="test")
    except Exception as exc:  # the hub raises many types; all mean "not available here"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RefuseuError(f"--capability global-mmlu: cannot load {HUB_ID} ({lang}) from the hub: {first}. "
                           "Offline? Pass --capability-data with local files in its schema.") from None
    return _check_rows([dict(r) for r in ds], f"{HUB_ID}:{lang}")


def sample_questions(langs: Sequence[str], n: int, seed: int, data_dir: str | None) -> dict[str, list[dict[str, Any]]]:
    """n questions per language, a stable seeded choice; languages without data are left out."""
    out: dict[str, list[dict[str, Any]]] = {}
    for lang in langs:
        rows = load_local(data_dir, lang) if data_dir else load_hub(lang)
        if not rows:
            continue
        def rank(i: int, lg: str = lang) -> str:
            return hashlib.sha256(f"{seed}|{lg}|{i}".encode()).hexdigest()

        picked = sorted(range(len(rows)), key=rank)[:n]
        out[lang] = [rows[i] for i in sorted(picked)]
    if not out:
        raise RefuseuError(f"--capability: no Global-MMLU data for any audited language ({', '.join(langs)})")
    return out


def question_prompt(row: dict[str, Any]) -> list[dict[str, str]]:
    options = "\n".join(f"{letter}. {row['option_' + letter.lower()]}" for letter in LETTERS)
    return [{"role": "user", "content": f"{row['question']}\n\n{options}\n\n{INSTRUCTION}"}]


def letter_ids(tokenizer: Any) -> list[int]:
    ids = []
    for letter in LETTERS:
        toks = tokenizer.encode(letter, add_special_tokens=False)
        if not toks:
            raise RefuseuError(f"the tokenizer cannot encode the answer letter {letter}")
        ids.append(toks[0])
    return ids


def accuracy(model: Any, tokenizer: Any, questions: dict[str, list[dict[str, Any]]], batch_size: int = 8) -> dict[str, Any]:
    """Per language and overall: the share of questions whose most likely answer letter is right."""
    torch = require("torch")
    from refuseu.auditor.models.hf_loading import render_chat

    ids = letter_ids(tokenizer)
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the next token is read at the last position of every row
    per_lang: dict[str, dict[str, Any]] = {}
    try:
        for lang, rows in questions.items():
            correct = 0
            for i in range(0, len(rows), batch_size):
                chunk = rows[i:i + batch_size]
                texts = [render_chat(tokenizer, question_prompt(r)) for r in chunk]
                enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                with torch.inference_mode():
                    logits = model(**enc).logits[:, -1, :].float()
                picks = logits[:, ids].argmax(dim=-1).tolist()
                correct += sum(LETTERS[p] == r["answer"] for p, r in zip(picks, chunk))
            per_lang[lang] = {"n": len(rows), "correct": correct, "accuracy": correct / len(rows) if rows else None}
    finally:
        tokenizer.padding_side = side
    n = sum(d["n"] for d in per_lang.values())
    k = sum(d["correct"] for d in per_lang.values())
    return {"n": n, "correct": k, "accuracy": k / n if n else None, "by_language": per_lang}


def capability_report(before: dict[str, Any], after: dict[str, Any], max_drop: float) -> dict[str, Any]:
    drop = None
    if before["accuracy"] is not None and after["accuracy"] is not None:
        drop = before["accuracy"] - after["accuracy"]
    return {"benchmark": "global-mmlu", "before": before, "after": after, "drop": drop, "max_drop": max_drop,
            "passed": drop is None or drop <= max_drop}
