"""The judge tables of docs/judging.md: `markers` and the default `classifier` side by side on the frozen evaluation
splits (per language, per kind, per split), from `refuseu-audit judge-eval --json`.

    python bench/judge_table.py [--extra FILE.jsonl[:SPLIT] ...]      # prints Markdown

--extra adds a line for any other labelled JSONL, or one split of it (tests/data/judge_cases.jsonl:heldout2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from refuseu.auditor.data.languages import CORE_LANGUAGES
from refuseu.auditor.judges.corpus import corpus_root

JUDGES = ("markers", "classifier")


def evaluate(judge: str, data: Path, *extra: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        proc = subprocess.run([sys.executable, "-m", "refuseu.auditor.cli", "judge-eval", str(data), "--judge", judge,
                               "--json", str(out), *extra], capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            sys.exit(f"judge-eval failed: {proc.stderr.strip()}")
        return json.loads(out.read_text(encoding="utf-8"))


def extra_args(spec: str) -> tuple[Path, ...] | tuple[Path, str, str]:
    """FILE or FILE:SPLIT as judge-eval arguments."""
    path, _, split = spec.rpartition(":")
    if path and Path(path).is_file() and not Path(spec).is_file():
        return Path(path), "--split", split
    return (Path(spec),)


def cell(block: dict | None) -> str:
    if not block or not block.get("n"):
        return "–"
    return f"{100 * block['accuracy']:.1f}% ({block['correct']}/{block['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", action="append", default=[], help="another labelled JSONL (FILE or FILE:SPLIT) to add as a line")
    args = ap.parse_args()
    root = corpus_root()
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "frozen.jsonl"
        with merged.open("w", encoding="utf-8") as fh:
            for split in ("frozen_a", "frozen_b"):
                for f in sorted((root / split).glob("*.jsonl")):
                    for line in f.read_text(encoding="utf-8").splitlines():
                        if line.strip():
                            fh.write(json.dumps({**json.loads(line), "split": split}, ensure_ascii=False) + "\n")
        results = {j: evaluate(j, merged) for j in JUDGES}
        per_split = {(j, s): evaluate(j, merged, "--split", s) for j in JUDGES for s in ("frozen_a", "frozen_b")}
    extras = {(j, e): evaluate(j, *extra_args(e)) for j in JUDGES for e in args.extra}

    head = "| language | " + " | ".join(f"{j} A | {j} B | **{j} A+B**" for j in JUDGES) + " |"
    print(head)
    print("|" + "---|" * (1 + 3 * len(JUDGES)))
    for lang in [*CORE_LANGUAGES, "all"]:
        row = [lang if lang != "all" else "**all**"]
        for j in JUDGES:
            for s in ("frozen_a", "frozen_b"):
                block = per_split[(j, s)]
                row.append(cell(block if lang == "all" else block["by_language"].get(lang)))
            block = results[j]
            row.append(f"**{cell(block if lang == 'all' else block['by_language'].get(lang))}**")
        print("| " + " | ".join(row) + " |")
    print()
    for j in JUDGES:
        r = results[j]
        print(f"- `{j}`: unjudgeable {r['unjudgeable']} of {r['n']}; response language "
              f"{100 * r['response_lang']['accuracy']:.1f}% ({r['response_lang']['correct']}/{r['response_lang']['n']})")
    print()
    print("| kind | " + " | ".join(JUDGES) + " |")
    print("|---|" + "---|" * len(JUDGES))
    kinds = sorted(results[JUDGES[0]]["by_kind"])
    for kind in kinds:
        print(f"| {kind} | " + " | ".join(cell(results[j]["by_kind"].get(kind)) for j in JUDGES) + " |")
    for e in args.extra:
        print()
        print(f"{e}: " + "; ".join(f"`{j}` {cell(extras[(j, e)])}, unjudgeable {extras[(j, e)]['unjudgeable']}"
                                   for j in JUDGES))


if __name__ == "__main__":
    main()
