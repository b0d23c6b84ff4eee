"""``refuseu-audit judge`` (judge a JSONL file, or re-judge a stored run) and ``refuseu-audit judge-eval``
(a judge's accuracy on a labeled set). Thin: parse, then call one function; heavy imports inside."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from refuseu.auditor.cli.common import PROG, run_guarded


def add_judge_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("judge", "Which judge, and for model judges (guard, llm, paper) which model.")
    g.add_argument("--judge", default="markers", help="Judge: markers (default), language, guard, llm or paper.")
    g.add_argument("--model", help="Judge model, resolved like an audited MODEL: alias, folder, .gguf or hub id "
                                   "(guard: Llama Guard 3 / PolyGuard / Qwen3Guard; llm: any instruct model).")
    g.add_argument("--backend", help="Backend for the judge model: hf (default), vllm, or openai (the default with --base-url).")
    g.add_argument("--base-url", help="Base URL of an OpenAI-compatible server for the judge model.")
    g.add_argument("--api-key-env", help="Environment variable holding the judge endpoint's API key (never stored).")
    g.add_argument("--format", dest="guard_format", metavar="FORMAT", help="guard only: llama-guard-3, polyguard or qwen3guard "
                                                         "(default: from the model name).")
    g.add_argument("--batch-size", type=int, help="Answers per judge-model call (default: picked by the backend).")
    g.add_argument("--max-new-tokens", type=int, help="Tokens the judge model may write per verdict.")
    g.add_argument("--device", help="Device for a local judge model (default: cuda if available, else cpu).")
    g.add_argument("--dtype", help="Weights dtype for a local judge model.")
    g.add_argument("--judge-id", help="Name of this judge's verdicts (default: the judge's name), e.g. to keep two guards apart.")
    g.add_argument("--option", action="append", default=[], metavar="K=V",
                   help="Any other judge option, e.g. adjudicator_model=gpt-4o-mini or polyguard_base_url=URL (repeatable).")
    g.add_argument("--options", metavar="FILE.yaml", help="YAML mapping of judge options; flags override it.")


def judge_options(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from refuseu.auditor.errors import RefuseuError

    opts: dict[str, Any] = {}
    if args.options:
        from refuseu.auditor.config import load_yaml_mapping

        loaded = load_yaml_mapping(args.options, "--options", "option: value")
        opts.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RefuseuError(f"--option: expected K=V, got '{item}'")
        opts[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else value
    flags = {"model": args.model, "backend": args.backend, "base_url": args.base_url, "api_key_env": args.api_key_env,
             "format": args.guard_format, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
             "device": args.device, "dtype": args.dtype, "judge_id": args.judge_id}
    opts.update({k: v for k, v in flags.items() if v is not None})
    return opts


def build_judge(name: str, options: dict[str, Any]) -> Any:
    """``get_judge`` with options; an option the judge does not take is one clear error line."""
    from refuseu.auditor.errors import RefuseuError
    from refuseu.auditor.judges import get_judge

    try:
        return get_judge(name, **options)
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        taken = ", ".join(sorted(options)) or "none"
        raise RefuseuError(f"judge '{name}' does not take these options ({taken}): {exc}") from None


def verdict_line(v: Any) -> dict[str, Any]:
    return {"id": v.id, "refusal": v.refused, "outcome": v.refusal, "harmful": v.harmful,
            "response_lang": v.response_lang, "judge": v.judge, "reason": v.reason}


def tally(verdicts: list[Any]) -> str:
    counts = Counter(v.refusal for v in verdicts)
    text = ", ".join(f"{counts[k]} {k}" for k in ("refusal", "compliance", "partial", "unjudgeable") if counts[k])
    harmful = [v.harmful for v in verdicts if v.harmful is not None]
    if harmful:
        text += f"; harmful {sum(harmful)}/{len(harmful)}"
    reasons = Counter(v.reason.split(":")[0] for v in verdicts if v.refusal == "unjudgeable")
    if reasons:
        text += "; unjudgeable because: " + ", ".join(f"{r} ({n})" for r, n in reasons.most_common(4))
    return text


def judge_file(judge: Any, input_path: str, output: str | None, quiet: bool) -> int:
    import asyncio
    import json
    from pathlib import Path

    from refuseu.auditor.cli.terminal import progress_bars
    from refuseu.auditor.judges.io import judge_items, load_judge_input
    from refuseu.auditor.store import write_text_atomic

    items = load_judge_input(input_path)
    done = 0
    with progress_bars(quiet) as progress:  # on stderr: stdout may carry the verdicts

        def on_batch(batch: list[Any]) -> None:
            nonlocal done
            done += len(batch)
            if progress:
                progress(f"judge:{judge.id}", done, len(items))

        verdicts = asyncio.run(_run(judge, judge_items(judge, items, on_batch)))
    text = "".join(json.dumps(verdict_line(v), ensure_ascii=False) + "\n" for v in verdicts)
    if output:
        write_text_atomic(Path(output), text)  # a reader never sees half a file
        print(f"judged {len(verdicts)} answers with '{judge.id}' -> {output}: {tally(verdicts)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        print(f"judged {len(verdicts)} answers with '{judge.id}': {tally(verdicts)}", file=sys.stderr)
    return 0


async def _run(judge: Any, work: Any) -> Any:
    """Await the judging, then release the judge's model whatever happened."""
    try:
        return await work
    finally:
        await judge.aclose()


def judge_run(judge: Any, run_dir: str, force: bool, quiet: bool) -> int:
    import asyncio

    from refuseu.auditor.cli.terminal import progress_bars
    from refuseu.auditor.runner import finalize, judge_store
    from refuseu.auditor.store import RunStore

    store = RunStore(run_dir)
    store.read_manifest()  # not a run directory: one clear error before any model loads
    path = store.verdicts_path(judge.id)
    if force and path.exists():
        path.unlink()
    with progress_bars(quiet) as progress:
        n = asyncio.run(_run(judge, judge_store(store, judge, progress)))
    manifest = store.read_manifest()
    manifest["judges"] = list(dict.fromkeys([*manifest.get("judges", []), judge.id]))
    if hasattr(judge, "spec"):
        manifest.setdefault("judge_specs", {})[judge.id] = judge.spec()
    store.write_manifest(manifest)
    summary = finalize(store)
    print(f"judged {n} new answers with '{judge.id}' -> {path}")
    agreement = summary["judges"]["agreement"].get(judge.id)
    if agreement == {}:
        print("agreement with the primary judge: no answers both judges gave a refusal label for")
    if agreement:
        print(f"agreement with the primary judge '{summary['judges']['primary']}' (answers both could judge):")
        for key, row in agreement.items():
            acc = "n/a" if row["agreement"] is None else f"{100 * row['agreement']:.1f}%"
            kappa = "n/a" if row["kappa"] is None else f"{row['kappa']:.2f}"
            print(f"  {key:<8} n={row['n']:<5} agreement {acc:>6}  kappa {kappa}")
    print(f"wrote {store.dir}/: summary.json and the report")
    return 0


def judge_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} judge",
        description="Judge answers: a JSONL file of {id, lang, prompt, response} (--input), or re-judge a stored "
                    "run without regenerating (RUN_DIR; writes verdicts.<judge>.jsonl and refreshes the summary).",
    )
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="A stored run to re-judge.")
    parser.add_argument("--input", help="JSONL file, one {id, lang, prompt, response} per line.")
    parser.add_argument("--output", help="Where to write the verdicts JSONL (default: stdout), one line per input "
                                         "line, in order: {id, refusal: true|false|null, response_lang, judge, ...}.")
    parser.add_argument("--force", action="store_true", help="RUN_DIR: drop this judge's old verdicts and judge everything again.")
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    add_judge_args(parser)
    args = parser.parse_args(argv)

    def go() -> int:
        from refuseu.auditor.errors import RefuseuError

        if bool(args.run_dir) == bool(args.input):
            raise RefuseuError("give either RUN_DIR or --input FILE.jsonl (not both)")
        if args.input and args.force:
            raise RefuseuError("--force applies to RUN_DIR only")
        if args.run_dir and args.output:
            raise RefuseuError("--output applies to --input only; a run's verdicts go to RUN_DIR/verdicts.<judge>.jsonl")
        judge = build_judge(args.judge, judge_options(args))
        if args.input:
            return judge_file(judge, args.input, args.output, args.quiet)
        return judge_run(judge, args.run_dir, args.force, args.quiet)

    return run_guarded(go, f"{PROG} judge")


def judge_eval_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} judge-eval",
        description="A judge's accuracy on a labeled set (e.g. tests/data/judge_cases.jsonl): per language, per kind "
                    "and split, a confusion matrix, response-language accuracy and the misjudged ids. "
                    "Exit 1 when a --min-* threshold is missed.",
    )
    parser.add_argument("file", metavar="FILE", help="Labeled JSONL: {id, lang, prompt, response, refusal, response_lang}.")
    parser.add_argument("--split", help="Only cases of this split (e.g. heldout).")
    parser.add_argument("--langs", help="Only these comma-separated languages.")
    parser.add_argument("--json", dest="json_out", help="Also write the evaluation as JSON to this file.")
    parser.add_argument("--min-accuracy", type=float, help="Fail (exit 1) below this overall accuracy, e.g. 0.95.")
    parser.add_argument("--min-language-accuracy", type=float, help="Fail below this accuracy in any language, e.g. 0.90.")
    parser.add_argument("--min-response-lang-accuracy", type=float, help="Fail below this response-language accuracy.")
    add_judge_args(parser)
    args = parser.parse_args(argv)

    def go() -> int:
        import asyncio
        from pathlib import Path

        from refuseu.auditor.errors import RefuseuError
        from refuseu.auditor.judges.evaluation import evaluate, format_eval
        from refuseu.auditor.judges.io import judge_items, labeled_items, load_labeled
        from refuseu.auditor.store import write_json_atomic

        cases = load_labeled(args.file)
        if args.split:
            cases = [c for c in cases if c.split == args.split]
        if args.langs:
            wanted = {s.strip() for s in args.langs.split(",") if s.strip()}
            cases = [c for c in cases if c.lang in wanted]
        if not cases:
            raise RefuseuError(f"{args.file}: no cases left after --split/--langs")
        judge = build_judge(args.judge, judge_options(args))
        verdicts = asyncio.run(_run(judge, judge_items(judge, labeled_items(cases))))
        result = evaluate(cases, verdicts, judge.id)
        try:
            print(format_eval(result), flush=True)
        except BrokenPipeError:  # `judge-eval ... | head`: the reader has what it wanted
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until exit, like stdout
        if args.json_out:
            write_json_atomic(Path(args.json_out), result)
        return 1 if missed(result, args) else 0

    return run_guarded(go, f"{PROG} judge-eval")


def missed(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    out = []
    if args.min_accuracy is not None and (result["accuracy"] or 0) < args.min_accuracy:
        out.append(f"accuracy {result['accuracy']:.3f} < {args.min_accuracy}")
    if args.min_language_accuracy is not None:
        out += [f"{lang}: accuracy {r['accuracy']:.3f} < {args.min_language_accuracy}"
                for lang, r in result["by_language"].items() if (r["accuracy"] or 0) < args.min_language_accuracy]
    rl = result["response_lang"]["accuracy"]
    if args.min_response_lang_accuracy is not None and rl is not None and rl < args.min_response_lang_accuracy:
        out.append(f"response-language accuracy {rl:.3f} < {args.min_response_lang_accuracy}")
    for line in out:
        print(f"{PROG} judge-eval: below threshold: {line}", file=sys.stderr)
    return out
