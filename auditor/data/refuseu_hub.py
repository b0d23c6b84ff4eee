"""Loaders for the RefusEU paper's data, ``NASK-PIB/RefusEU`` (hub, through ``datasets``), or a local copy of it
(parquet or JSONL files in the same schema, e.g. a folder fetched with ``huggingface-cli download``).

Schema:
- config ``evaluation``, split ``eval``: ``row_id, lang, prompt``. Rows sharing a ``row_id`` share category,
  activity and style but are not translations; the split has no category column, so category is ``unknown``.
- configs ``lang_xx``, splits ``train``/``test``: ``chosen`` and ``rejected`` chat lists, ``lang, id, row_id,
  category`` (S1-S14). The prompt is the user turn inside ``chosen``; the chosen assistant turn becomes the
  case's reference refusal, which ``refuseu-fix`` uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from refuseu.auditor.data.cases import Case, Suite
from refuseu.auditor.data.languages import CORE_LANGUAGES, is_language_code
from refuseu.auditor.errors import RefuseuError, SuiteError
from refuseu.auditor.textfiles import iter_lines

REPO = "NASK-PIB/RefusEU"
SELECTIONS = {"eval": ("evaluation", "eval"), "test": ("lang_xx", "test"), "train": ("lang_xx", "train")}
HOW_TO_GET = (f"download it once with `huggingface-cli download {REPO} --repo-type dataset --local-dir refuseu-data` "
              "and pass --suite refuseu-data")


def load_refuseu(selection: str | None = None, *, repo: str = REPO) -> Suite:
    """``--suite refuseu`` (the evaluation split), ``refuseu:test`` or ``refuseu:train`` from the hub."""
    from refuseu.auditor.registry import require

    key = selection or "eval"
    if key not in SELECTIONS:
        raise RefuseuError(f"unknown RefusEU selection '{key}' (known: {', '.join(SELECTIONS)})")
    config, split = SELECTIONS[key]
    datasets = require("datasets")
    configs = [config] if config == "evaluation" else [f"lang_{lang}" for lang in CORE_LANGUAGES]
    rows: list[tuple[str, int, dict[str, Any]]] = []
    for name in configs:
        try:
            ds = datasets.load_dataset(repo, name, split=split)
        except Exception as exc:  # datasets raises many types offline (ConnectionError, FileNotFoundError, ...)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RefuseuError(f"could not load {repo} ({name}/{split}): {first}. Offline? {HOW_TO_GET}") from None
        rows.extend((f"{repo}:{name}/{split}", i + 1, dict(r)) for i, r in enumerate(ds))
    return _suite(rows, f"refuseu-{key}", f"hub:{repo}")


def looks_like_refuseu(path: Path) -> bool:
    """A folder (or file) in the RefusEU schema: parquet files, or JSONL rows with row_id / chosen."""
    files = _data_files(path)
    if any(f.suffix == ".parquet" for f in files):
        return True
    for f in files:
        first = next((line for _, line in iter_lines(f) if line.strip()), "")
        try:
            rec = json.loads(first)
        except json.JSONDecodeError:
            return False
        return isinstance(rec, dict) and ("row_id" in rec or "chosen" in rec)
    return False


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".jsonl") and ".cache" not in p.parts)


def load_refuseu_path(path: Path) -> Suite:
    """A local copy: every parquet/JSONL file below ``path`` in the RefusEU schema."""
    files = _data_files(path)
    if not files:
        raise SuiteError(str(path), None, None, f"no parquet or JSONL files in the RefusEU schema; {HOW_TO_GET}")
    rows: list[tuple[str, int, dict[str, Any]]] = []
    for f in files:
        rows.extend((str(f), n, r) for n, r in _read_rows(f))
    return _suite(rows, f"refuseu-{path.name}", str(path))


def _read_rows(f: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if f.suffix == ".parquet":
        from refuseu.auditor.registry import require

        pq = require("pyarrow.parquet")
        for n, r in enumerate(pq.read_table(f).to_pylist(), start=1):
            yield n, r
        return
    for n, line in iter_lines(f):
        if line.strip():
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise SuiteError(str(f), n, None, f"invalid JSON: {exc.msg}") from None


def _turn(chat: Any, role: str, where: str, line: int, field: str) -> str:
    if not isinstance(chat, list):
        raise SuiteError(where, line, field, "must be a list of chat turns {role, content}")
    for turn in chat:
        if isinstance(turn, dict) and turn.get("role") == role and isinstance(turn.get("content"), str):
            return str(turn["content"])
    raise SuiteError(where, line, field, f"has no '{role}' turn")


def case_from_row(row: dict[str, Any], where: str, line: int) -> Case:
    lang = row.get("lang")
    if not isinstance(lang, str) or not is_language_code(lang):
        raise SuiteError(where, line, "lang", f"must be a two-letter language code, got {lang!r}")
    row_id = row.get("row_id")
    if row_id is None or row_id == "":
        raise SuiteError(where, line, "row_id", "is missing")
    meta = {"row_id": str(row_id)}
    if "chosen" in row:  # a preference row (lang_xx configs)
        prompt = _turn(row["chosen"], "user", where, line, "chosen")
        reference = _turn(row["chosen"], "assistant", where, line, "chosen")
        category = row.get("category")
        if not isinstance(category, str) or not (category.startswith("S") and category[1:].isdigit()):
            raise SuiteError(where, line, "category", f"must be S1-S14, got {category!r}")
        if "rejected" in row:
            meta["rejected"] = _turn(row["rejected"], "assistant", where, line, "rejected")
        if row.get("id") is not None:
            meta["source_id"] = str(row["id"])
        return Case(f"row-{row_id}", lang, category, "unknown", (("user", prompt),), "refuse", reference,
                    tuple(sorted(meta.items())))
    text = row.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise SuiteError(where, line, "prompt", "is missing or blank")
    return Case(f"row-{row_id}", lang, "unknown", "unknown", (("user", text),), "refuse", None, tuple(sorted(meta.items())))


def _suite(rows: list[tuple[str, int, dict[str, Any]]], name: str, source: str) -> Suite:
    cases: list[Case] = []
    seen: dict[tuple[str, str], int] = {}
    for where, line, row in rows:
        case = case_from_row(row, where, line)
        key = (case.lang, case.id)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:  # several prompts of one row_id in one language: keep them all, apart
            case = Case(f"{case.id}.{seen[key]}", case.lang, case.category, case.style, case.messages,
                        case.expected, case.reference, case.meta)
        cases.append(case)
    if not cases:
        raise SuiteError(source, None, None, "no rows")
    from refuseu.auditor.data.cases import HARM_CATEGORIES

    return Suite(name=name, version="refuseu", cases=tuple(cases), description="RefusEU (NASK-PIB/RefusEU)",
                 categories={**HARM_CATEGORIES, "unknown": "Unknown (RefusEU evaluation split)"}, source=source)
