"""``refuseu-audit suites``: list the built-in suites, or validate suite files and report every bad line."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from refuseu.auditor.cli import PROG, run_guarded
from refuseu.auditor.errors import RefuseuError, SuiteError


def validate_path(path: Path) -> tuple[int, list[str]]:
    """(number of valid cases, every problem as 'file:line: field ...'). Keeps going after the first problem."""
    from refuseu.auditor.cases import case_from_record, load_suite_dir, read_records

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
    from refuseu.auditor.cases import builtin_suites, load_suite_dir

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


def suites_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} suites", description=__doc__)
    parser.add_argument("--validate", metavar="PATH", action="append",
                        help="Check a suite file or folder; every bad line is reported as file:line and field.")
    parser.add_argument("--json", action="store_true", help="Print the listing as JSON.")
    args = parser.parse_args(argv)

    def go() -> int:
        if args.validate:
            bad = 0
            for p in args.validate:
                path = Path(p)
                if not path.exists():
                    raise RefuseuError(f"--validate: no such file or folder: {p}")
                ok, problems = validate_path(path)
                for problem in problems:
                    print(problem)
                print(f"{p}: {ok} valid case(s), {len(problems)} problem(s)")
                bad += len(problems)
            return 2 if bad else 0
        rows = list_suites()
        if args.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return 0
        for r in rows:
            langs = r["languages"]
            assert isinstance(langs, list)
            print(f"{r['name']} {r['version']} ({r['hash']}): {r['harmful_ids']} harmful + {r['benign_ids']} benign ids "
                  f"x {len(langs)} languages = {r['cases']} cases; {r['categories']} categories, {r['styles']} styles; "
                  f"smoke: {r['smoke_ids']} ids (--suite {r['name']}:smoke)")
            print(f"  languages: {' '.join(langs)}")
        print("also: --suite refuseu | refuseu:test | refuseu:train (NASK-PIB/RefusEU), or a folder/JSONL/CSV/parquet path")
        return 0

    return run_guarded(go, f"{PROG} suites")
