"""``refuseu-audit suites``: list the built-in suites, or validate suite files and report every bad line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from refuseu.auditor.cli.common import PROG, run_guarded
from refuseu.auditor.config import JsonConfig
from refuseu.auditor.errors import RefuseuError
from refuseu.auditor.options import opt


@dataclass
class SuitesCommand(JsonConfig):
    validate: list[str] = opt([], "Check a suite file or folder; every bad line is reported as file:line and field "
                                  "(repeatable).", metavar="PATH", split=False)


def suites_command(argv: Sequence[str]) -> int:
    from refuseu.auditor.options import make_parser

    parser = make_parser(SuitesCommand, f"{PROG} suites", __doc__ or "")

    def go() -> int:
        from refuseu.auditor.options import parse_config

        args, _ = parse_config(parser, SuitesCommand, argv)
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
            text = json.dumps(rows, indent=2, ensure_ascii=False)
            if args.json == "-":
                print(text)
            else:
                Path(args.json).write_text(text + "\n", encoding="utf-8")
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
