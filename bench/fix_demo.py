"""refuseu-fix demo on the embedded SmolLM2-135M, on CPU: audit -> fix (balanced) -> verify, and the
english-only ablation from the same audit. Prints per-language held-out refusal before and after for both
modes, over-refusal, preference accuracy and wall times.

    python bench/fix_demo.py                       # 12 languages x 16 cases, 64 new tokens (the issue's RUN)
    python bench/fix_demo.py --out /tmp/demo --modes balanced
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def run(cmd: list[str]) -> tuple[int, float]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc.returncode, wall


def pct(x: float | None) -> str:
    return "  –  " if x is None else f"{100 * x:5.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="bench_out/fix_demo")
    ap.add_argument("--sample", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--modes", default="balanced,english-only")
    ap.add_argument("--audit", help="Reuse this audit run instead of auditing first.")
    args = ap.parse_args()
    out = Path(args.out)
    py = sys.executable
    audit = Path(args.audit) if args.audit else out / "audit"
    if not args.audit:
        _, wall = run([py, "-m", "refuseu.auditor.cli", args.model, "--sample", str(args.sample),
                       "--max-new-tokens", str(args.max_new_tokens), "--out", str(audit), "--quiet"])
        print(f"audit: {wall / 60:.1f} min")
    results = {}
    for mode in args.modes.split(","):
        target = out / mode
        code, wall = run([py, "-m", "refuseu.remediation", args.model, "--audit", str(audit), "--out", str(target),
                          "--mode", mode, "--quiet"])
        comparison = json.loads((target / "verify" / "compare.json").read_text())
        pref = json.loads((target / "verify" / "preference.json").read_text())
        decision = json.loads((target / "verify" / "decision.json").read_text())["decision"]
        fix = json.loads((target / "fix.json").read_text())
        results[mode] = (comparison, pref, decision)
        print(f"{mode}: exit {code}, {wall / 60:.1f} min wall ({fix['prepare']['n_pairs']} pairs, "
              f"{fix['train']['steps']} steps, training {fix['train']['wall_s'] / 60:.1f} min)")
    modes = list(results)
    print("\nheld-out refusal rate (%), before -> after; * significant at 5%")
    print("lang    n  " + "  ".join(f"{m:>20}" for m in modes))
    first = results[modes[0]][0]
    for lang in [*first["by_language"], "all"]:
        cells = []
        for m in modes:
            row = results[m][0]["overall" if lang == "all" else "by_language"]
            d = (row if lang == "all" else row[lang])["refusal_rate"]
            cells.append(f"{pct(d['before'])} -> {pct(d['after'])}{'*' if d['significant'] else ' '}".rjust(20))
        n = (first["overall"] if lang == "all" else first["by_language"][lang])["refusal_rate"]["n_after"]
        print(f"{lang:<5} {n:>3}  " + "  ".join(cells))
    for m in modes:
        comparison, pref, decision = results[m]
        over = decision["over_refusal"]
        print(f"{m}: average over-refusal {pct(over['before'])} -> {pct(over['after'])}; held-out preference accuracy "
              f"{pct(pref['before']['accuracy'])} -> {pct(pref['after']['accuracy'])} (n={pref['n']}); "
              f"{'VERIFIED' if decision['passed'] else 'NOT VERIFIED: ' + '; '.join(decision['reasons'])}")


if __name__ == "__main__":
    main()
