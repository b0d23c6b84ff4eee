"""``refuseu-audit judge`` (judge a JSONL file, or re-judge a stored run) and ``refuseu-audit judge-eval`` (a
judge's accuracy on a labeled set). Thin: parse, then call one function; heavy imports inside."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from refuseu.auditor.cli.common import PROG, run_guarded
from refuseu.auditor.config import (
    BatchConfig,
    HttpConfig,
    JsonConfig,
    JudgesConfig,
    LangsConfig,
    MaxTokensConfig,
    ModelConfig,
    QuietConfig,
    RunDirConfig,
)
from refuseu.auditor.options import opt

# Flags of the judge commands that configure a model judge, as the judge's option names.
MODEL_FLAGS = ("model", "backend", "base_url", "api_key_env", "batch_size", "max_new_tokens", "device", "dtype",
               "concurrency", "judge_id")


@dataclass
class JudgeSelection(JudgesConfig, ModelConfig, BatchConfig, HttpConfig, MaxTokensConfig):
    """Which judge, and for a model judge (guard, llm) which model: the audit's own model flags."""

    guard_format: str | None = opt(None, "guard only: llama-guard-3, polyguard or qwen3guard (default: from the model "
                                         "name).", flag="--format", choices=("llama-guard-3", "polyguard", "qwen3guard"))
    options: str | None = opt(None, "YAML mapping of judge options; flags and --judge-option override it.",
                              metavar="FILE.yaml")
    judge_id: str | None = opt(None, "Name of this judge's verdicts (default: the judge's name), e.g. to keep two guards "
                                     "apart.")


@dataclass
class JudgeCommand(RunDirConfig, JudgeSelection, QuietConfig):
    input: str | None = opt(None, "JSONL file, one {id, lang, prompt, response} per line.")
    output: str | None = opt(None, "Where to write the verdicts JSONL (default: stdout), one line per input line, in "
                                   "order: {id, refusal: true|false|null, outcome, p_refusal, response_lang, judge, reason}.")
    force: bool = opt(False, "RUN_DIR: drop this judge's old verdicts and judge everything again.")


@dataclass
class JudgeEvalCommand(JudgeSelection, LangsConfig, JsonConfig):
    file: str = opt("", "Labeled JSONL: {id, lang, prompt, response, and refusal (true/false/null) or label "
                        "(refusal/compliance/partial/unjudgeable), response_lang}.", metavar="FILE")
    split: str | None = opt(None, "Only cases of this split (e.g. frozen_b).")
    min_accuracy: float | None = opt(None, "Fail (exit 1) below this overall accuracy, e.g. 0.95.")
    min_language_accuracy: float | None = opt(None, "Fail below this accuracy in any language, e.g. 0.90.")
    min_response_lang_accuracy: float | None = opt(None, "Fail below this response-language accuracy.")


def build_judge(config: JudgeSelection, explicit: set[str]) -> Any:
    """The one judge of a judge command, with every option given by flag, --options or --judge-option."""
    from refuseu.auditor.errors import RefuseuError
    from refuseu.auditor.judges import get_judge
    from refuseu.auditor.options import load_yaml_mapping

    if len(config.judge) != 1:
        raise RefuseuError(f"--judge: give one judge here, got {','.join(config.judge)}")
    name = config.judge[0]
    opts: dict[str, Any] = {}
    if config.options:
        loaded = load_yaml_mapping(config.options, "--options", "option: value")
        opts.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    opts.update({k: getattr(config, k) for k in MODEL_FLAGS if k in explicit})
    if "guard_format" in explicit:
        opts["format"] = config.guard_format
    opts.update(config_options(config, name))
    return get_judge(name, **opts)


def config_options(config: JudgesConfig, name: str) -> dict[str, Any]:
    from refuseu.auditor.options import parse_pairs

    mine = [p.partition(".")[2] if p.partition("=")[0].startswith(f"{name}.") else p for p in config.judge_option]
    return parse_pairs(mine, "--judge-option")


def verdict_line(v: Any) -> dict[str, Any]:
    return {"id": v.id, "refusal": v.refused, "outcome": v.outcome, "p_refusal": v.p_refusal, "harmful": v.harmful,
            "response_lang": v.response_lang, "judge": v.judge, "reason": v.reason}


def tally(verdicts: list[Any]) -> str:
    counts = Counter(v.outcome for v in verdicts)
    text = ", ".join(f"{counts[k]} {k}" for k in ("refusal", "compliance", "partial", "unjudgeable") if counts[k])
    harmful = [v.harmful for v in verdicts if v.harmful is not None]
    if harmful:
        text += f"; harmful {sum(harmful)}/{len(harmful)}"
    reasons = Counter(v.reason.split(" (")[0].split(":")[0] for v in verdicts if v.outcome == "unjudgeable")
    if reasons:
        text += "; unjudgeable because: " + ", ".join(f"{r} ({n})" for r, n in reasons.most_common(4))
    return text


def judge_file(judge: Any, input_path: str, output: str | None, quiet: bool) -> int:
    import asyncio
    import json
    from pathlib import Path

    from refuseu.auditor.cli.terminal import progress_bars
    from refuseu.auditor.judges.io import judge_with_progress, load_judge_input
    from refuseu.auditor.store import write_text_atomic

    items = load_judge_input(input_path)
    with progress_bars(quiet) as progress:  # on stderr: stdout may carry the verdicts
        verdicts = asyncio.run(judge_with_progress(judge, items, progress))
    text = "".join(json.dumps(verdict_line(v), ensure_ascii=False) + "\n" for v in verdicts)
    if output:
        write_text_atomic(Path(output), text)  # a reader never sees half a file
        print(f"judged {len(verdicts)} answers with '{judge.id}' -> {output}: {tally(verdicts)}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        print(f"judged {len(verdicts)} answers with '{judge.id}': {tally(verdicts)}", file=sys.stderr)
    return 0


def judge_run(judge: Any, run_dir: str, force: bool, quiet: bool) -> int:
    import asyncio

    from refuseu.auditor.cli.terminal import progress_bars
    from refuseu.auditor.runner import finalize, rejudge
    from refuseu.auditor.store import RunStore

    store = RunStore(run_dir)
    with progress_bars(quiet) as progress:
        n = asyncio.run(rejudge(store, judge, force=force, progress=progress))
    summary = finalize(store)
    print(f"judged {n} new answers with '{judge.id}' -> {store.verdicts_path(judge.id)}")
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


def check_run(judge: Any, run_dir: str, per_language: int, quiet: bool) -> int:
    import asyncio

    from refuseu.auditor.cli.terminal import progress_bars
    from refuseu.auditor.runner import finalize, run_check
    from refuseu.auditor.store import RunStore

    store = RunStore(run_dir)
    manifest = store.read_manifest()
    if judge.id == manifest.get("judge"):
        from refuseu.auditor.errors import RefuseuError

        raise RefuseuError(f"--check-judge {judge.id} is the run's own judge; give another judge, or a judge_id")
    with progress_bars(quiet) as progress:
        n = asyncio.run(run_check(store, judge, per_language, int((manifest.get("selection") or {}).get("seed", 0)),
                                  progress))
    summary = finalize(store)
    check = summary["judges"].get("check") or {}
    print(f"'{judge.id}' judged {n} sampled answers; against the primary judge '{summary['judges']['primary']}':")
    for key, row in (check.get("by_language") or {}).items():
        agree = "n/a" if row["agreement"] is None else f"{100 * row['agreement']:.1f}%"
        kappa = "n/a" if row["kappa"] is None else f"{row['kappa']:.2f}"
        print(f"  {key:<8} n={row['n']:<4} agreement {agree:>6}  kappa {kappa}{'  FLAGGED' if row['flagged'] else ''}")
    for flag in check.get("flags", []):
        print(f"{PROG} judge: warning: {flag}", file=sys.stderr)
    print(f"wrote {store.dir}/: summary.json and the report")
    return 0


def judge_command(argv: Sequence[str]) -> int:
    from refuseu.auditor.options import make_parser

    parser = make_parser(JudgeCommand, f"{PROG} judge", "Judge answers: a JSONL file of {id, lang, prompt, response} "
                         "(--input), or re-judge a stored run without regenerating (RUN_DIR; writes "
                         "verdicts.<judge>.jsonl and refreshes the summary).", positional=("run_dir",))

    def go() -> int:
        from refuseu.auditor.errors import RefuseuError
        from refuseu.auditor.options import parse_config

        config, explicit = parse_config(parser, JudgeCommand, argv)
        if bool(config.run_dir) == bool(config.input):
            raise RefuseuError("give either RUN_DIR or --input FILE.jsonl (not both)")
        if config.input and config.force:
            raise RefuseuError("--force applies to RUN_DIR only")
        if config.run_dir and config.output:
            raise RefuseuError("--output applies to --input only; a run's verdicts go to RUN_DIR/verdicts.<judge>.jsonl")
        if config.check_judge:
            if not config.run_dir:
                raise RefuseuError("--check-judge works on a stored run: give RUN_DIR")
            config.judge = [config.check_judge]  # the model flags and options are the check judge's
            return check_run(build_judge(config, explicit), config.run_dir, config.check_sample, config.quiet)
        judge = build_judge(config, explicit)
        if config.input:
            return judge_file(judge, config.input, config.output, config.quiet)
        assert config.run_dir is not None
        return judge_run(judge, config.run_dir, config.force, config.quiet)

    return run_guarded(go, f"{PROG} judge")


def judge_eval_command(argv: Sequence[str]) -> int:
    from refuseu.auditor.options import make_parser

    parser = make_parser(JudgeEvalCommand, f"{PROG} judge-eval", "A judge's accuracy on a labeled set (e.g. the frozen "
                         "splits under auditor/judges/data/corpus): per language, per kind and split, a confusion "
                         "matrix, response-language accuracy and the misjudged ids. Exit 1 when a --min-* threshold is "
                         "missed.", positional=("file",))

    def go() -> int:
        import asyncio
        import json
        from pathlib import Path

        from refuseu.auditor.errors import RefuseuError
        from refuseu.auditor.judges.evaluation import evaluate, format_eval, missed
        from refuseu.auditor.judges.io import judge_items, labeled_items, load_labeled
        from refuseu.auditor.options import parse_config
        from refuseu.auditor.store import write_json_atomic

        config, explicit = parse_config(parser, JudgeEvalCommand, argv)
        cases = load_labeled(config.file)
        if config.split:
            cases = [c for c in cases if c.split == config.split]
        if config.langs:
            cases = [c for c in cases if c.lang in set(config.langs)]
        if not cases:
            raise RefuseuError(f"{config.file}: no cases left after --split/--langs")
        judge = build_judge(config, explicit)
        verdicts = asyncio.run(judge_items(judge, labeled_items(cases), close=True))
        result = evaluate(cases, verdicts, judge.id)
        if config.json == "-":
            print(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            print(format_eval(result), flush=True)
            if config.json:
                write_json_atomic(Path(config.json), result)
        failures = missed(result, config.min_accuracy, config.min_language_accuracy, config.min_response_lang_accuracy)
        for line in failures:
            print(f"{PROG} judge-eval: below threshold: {line}", file=sys.stderr)
        return 1 if failures else 0

    return run_guarded(go, f"{PROG} judge-eval")
