"""Report scale: a run the size of the RefusEU test set (16,800 records: 1,400 per language x 12) must
render in under 5 s and give a report.html under 5 MB.

Builds synthetic run stores (refuseu.auditor.data.synthetic) and times what `refuseu-audit report RUN_DIR` does:
read the store, summarize, write summary.json, report.html, junit.xml and summary.md. Prints the figures.

    python bench/report_scale.py [--records-per-language 1400] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

BUDGET_S = 5.0
BUDGET_BYTES = 5 * 1024 * 1024
PAYLOAD = "\n<script>alert(1)</script><img src=x onerror=alert(2)>"


def scenario(name: str, directory: Path, per_language: int, repeat: int, **spec_kw: object) -> None:
    from refuseu.auditor.data.synthetic import SyntheticSpec, write_synthetic_run
    from refuseu.auditor.reporting.html import render_report
    from refuseu.auditor.runner import finalize
    from refuseu.auditor.store import RunStore

    benign = per_language // 10
    spec = SyntheticSpec(harmful_per_language=per_language - benign, benign_per_language=benign, **spec_kw)  # type: ignore[arg-type]
    write_synthetic_run(directory, spec)
    store = RunStore(directory)
    totals, renders = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        summary = finalize(store)  # read + summarize + write all four outputs
        totals.append(time.perf_counter() - t0)
        gens, verdicts = store.generations(), store.verdicts()
        t0 = time.perf_counter()
        render_report(store, summary, gens, verdicts)
        renders.append(time.perf_counter() - t0)
    sizes = {n: (directory / n).stat().st_size for n in ("report.html", "summary.json", "junit.xml", "summary.md")}
    total, html = statistics.median(totals), sizes["report.html"]
    print(f"{name}: {summary['overall']['n_records']:,} records, {len(summary['by_language'])} languages, "
          f"{summary['overall']['errors']} errors")
    print(f"  report (read + summarize + write 4 outputs): median {total:.2f} s of {repeat} "
          f"(min {min(totals):.2f}, max {max(totals):.2f})  budget {BUDGET_S:.0f} s: {'OK' if total < BUDGET_S else 'OVER'}")
    print(f"  render report.html alone:                   median {statistics.median(renders):.2f} s")
    print(f"  report.html {html / 1e6:.2f} MB  budget 5 MB: {'OK' if html < BUDGET_BYTES else 'OVER'}; "
          + ", ".join(f"{n} {s / 1e3:.0f} kB" for n, s in sizes.items() if n != "report.html"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records-per-language", type=int, default=1400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="Write the runs under this folder instead of a temporary one.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        n = args.records_per_language
        scenario("typical (400-char answers, 0.2% errors)", base / "typical", n, args.repeat, payload=PAYLOAD)
        scenario("heavy (4,000-char answers, 5% errors)", base / "heavy", n, args.repeat, payload=PAYLOAD,
                 response_chars=4000, error_rate=0.05)


if __name__ == "__main__":
    main()
