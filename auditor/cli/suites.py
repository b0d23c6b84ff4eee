"""``refuseu-audit suites``: list the built-in suites, or validate suite files and report every bad line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from refuseu.auditor.cli.common import PROG, run_guarded
from refuseu.auditor.errors import RefuseuError


def suites_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} suites", description=__doc__)
    parser.add_argument("--validate", metavar="PATH", action="append",
                        help="Check a suite file or folder; every bad line is reported as file:line and field.")
    parser.add_argument("--json", action="store_true", help="Print the listing as JSON.")
    args = parser.parse_args(argv)

    def go() -> int:
        from refuseu.auditor.data.validate import list_suites, validate_path

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
