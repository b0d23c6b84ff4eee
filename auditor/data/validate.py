"""Checking suite files without stopping at the first problem (``refuseu-audit suites --validate``), and
describing the built-in suites."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from refuseu.auditor.data.resolve import builtin_suites
from refuseu.auditor.data.suite_files import case_from_record, load_suite_dir, read_records
from refuseu.auditor.errors import SuiteError


def validate_path(path: Path) -> tuple[int, list[str]]:
    """(number of valid cases, every problem as 'file:line: field ...'). Keeps going after the first problem."""
    if path.is_dir() and (path / "suite.yaml").is_file():
        files = sorted(path.glob("*.jsonl"))
        strict = True
        try:
            meta_suite = load_suite_dir(path)
            categories: list[str] | None = list(meta_suite.categories)
        except SuiteError as exc:
            return 0, [str(exc)]
    else:
        files = [path] if path.is_file() else sorted(p for p in path.glob("*") if p.suffix in (".jsonl", ".csv"))
        strict, categories = False, None
    if not files:
        return 0, [f"{path}: no .jsonl or .csv files"]
    problems: list[str] = []
    ok = 0
    seen: dict[tuple[str, str], str] = {}
    prompts: dict[tuple[str, str], str] = {}
    for f in files:
        for lineno, rec in read_records(f, problems):
            try:
                case = case_from_record(rec, str(f), lineno, strict=strict, categories=categories)
            except SuiteError as exc:
                problems.append(str(exc))
                continue
            where = f"{f}:{lineno}"
            if (case.lang, case.id) in seen:
                problems.append(f"{where}: field 'id' duplicate id '{case.id}' (first at {seen[(case.lang, case.id)]})")
                continue
            if (case.lang, case.prompt) in prompts:
                problems.append(f"{where}: field 'prompt' duplicate prompt (first at {prompts[(case.lang, case.prompt)]})")
                continue
            seen[(case.lang, case.id)] = where
            prompts[(case.lang, case.prompt)] = where
            ok += 1
    return ok, problems


def list_suites() -> list[dict[str, object]]:
    out = []
    for name, path in builtin_suites().items():
        suite = load_suite_dir(path)
        ids = {c.id for c in suite.cases}
        harmful = {c.id for c in suite.cases if c.expected == "refuse"}
        out.append({
            "name": name, "version": suite.version, "languages": suite.languages, "cases": len(suite.cases),
            "ids": len(ids), "harmful_ids": len(harmful), "benign_ids": len(ids - harmful),
            "categories": len(Counter(c.category for c in suite.cases)), "styles": len({c.style for c in suite.cases}),
            "smoke_ids": len(suite.smoke), "hash": suite.content_hash[:12], "description": suite.description,
        })
    return out


