"""``refuseu-audit judge-train``: build the default judge's model from labelled answers (by default the corpus in
the repository), measure it on the frozen splits and write its calibration. The shipped model is exactly what
``refuseu-audit judge-train --out auditor/judges/data`` builds from the repository's data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from refuseu.auditor.cli.common import PROG, run_guarded
from refuseu.auditor.config import OutputConfig, SeedConfig
from refuseu.auditor.options import at_least, opt


@dataclass
class JudgeTrainCommand(SeedConfig, OutputConfig):
    """--out is the folder for refusal_classifier.json.gz, calibration.json and training_report.json (default
    judge-model/); --out auditor/judges/data rebuilds the shipped model."""

    data: str | None = opt(None, "Corpus folder holding train/ (and frozen_a/, frozen_b/ for the calibration) "
                                 "(default: the corpus shipped with refuseu).")
    folds: int = opt(5, "Cross-validation folds (split by topic) that choose the regularisation and the threshold.")

    def check(self) -> None:
        at_least(self.folds, 1, "--folds")


def judge_train_command(argv: Sequence[str]) -> int:
    from refuseu.auditor.options import make_parser

    parser = make_parser(JudgeTrainCommand, f"{PROG} judge-train", __doc__ or "")

    def go() -> int:
        import json
        import sys
        from pathlib import Path

        from refuseu.auditor.cli.terminal import progress_bars
        from refuseu.auditor.judges.corpus import EVAL_SPLITS, corpus_root, eval_examples, training_examples
        from refuseu.auditor.judges.training import calibration, data_hash, train, write_model
        from refuseu.auditor.options import parse_config

        config, _ = parse_config(parser, JudgeTrainCommand, argv)
        root = Path(config.data) if config.data else corpus_root()
        examples = training_examples(root)
        files = sorted((root / "train").glob("*.jsonl"))
        with progress_bars(config.quiet) as progress:
            model, report = train(examples, seed=config.seed, folds=config.folds, data_sha256=data_hash(files),
                                  progress=progress)
        out = Path(config.out or "judge-model")
        write_model(out, model, report, None)
        calib = None
        if all((root / s).is_dir() for s in EVAL_SPLITS):
            calib = calibration(out / "refusal_classifier.json.gz", eval_examples(root))
        written = write_model(out, model, report, calib)
        print(f"trained on {len(examples)} answers ({report['n_features']} features, l2 {report['l2']:g}, "
              f"threshold {report['threshold']}); wrote {', '.join(str(p) for p in written)}")
        if "cv" in report:
            print(f"cross-validation (folds by topic): accuracy {report['cv']['accuracy_unjudgeable_wrong']:.3f}, "
                  f"unjudgeable {report['cv']['unjudgeable']:.1%}", file=sys.stderr)
        if calib:
            print("frozen splits: " + json.dumps(calib["overall"]), file=sys.stderr)
        return 0

    return run_guarded(go, f"{PROG} judge-train")
