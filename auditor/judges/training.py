"""Training the default judge (``refuseu-audit judge-train``): features -> two L2-regularised logistic models,
fitted by full-batch L-BFGS in numpy, so the same data and seed always give the same weights.

Model selection never sees the frozen evaluation splits: the regularisation strength and the confidence
threshold come from cross-validation on the training data, with folds split by *topic* (a fold's topics are
never in its training part), which is how the judge meets new answers. The frozen splits are read once, after
training, to measure the model and write its calibration (sensitivity and specificity per language).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refuseu.auditor.judges.classifier import CALIBRATION_FILE, MODEL_FILE, Model
from refuseu.auditor.judges.corpus import Example

L2_GRID = (3e-5, 1e-4, 3e-4)
MIN_DF = 2
ITERATIONS = 250
TARGET_ABSTAIN = 0.02  # the share of cross-validated answers the threshold leaves unjudgeable
THRESHOLD_RANGE = (0.55, 0.8)


def _np() -> Any:
    from refuseu.auditor.registry import require

    return require("numpy")


def featurize(examples: Sequence[Example]) -> list[set[str]]:
    from refuseu.auditor.judges.features import features
    from refuseu.auditor.judges.markers import load_markers

    markers = load_markers()
    out = []
    for e in examples:
        codes = [c for c in dict.fromkeys([e.response_lang, e.lang, "en"]) if c in markers]
        out.append(features(e.response, e.lang, e.response_lang, [markers[c] for c in codes], e.prompt)[0])
    return out


@dataclass
class Design:
    """The feature matrix in coordinate form (every feature is binary)."""

    vocab: list[str]
    rows: Any
    cols: Any
    n: int


def design(feats: Sequence[set[str]], vocab: list[str] | None = None) -> Design:
    np = _np()
    if vocab is None:
        df: dict[str, int] = defaultdict(int)
        for fs in feats:
            for f in fs:
                df[f] += 1
        vocab = sorted(f for f, c in df.items() if c >= MIN_DF or f == "bias")
    index = {f: i for i, f in enumerate(vocab)}
    rows, cols = [], []
    for r, fs in enumerate(feats):
        for f in sorted(fs):
            j = index.get(f)
            if j is not None:
                rows.append(r)
                cols.append(j)
    return Design(vocab, np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), len(feats))


def fit(d: Design, y: Any, sample_weight: Any, l2: float, iterations: int = ITERATIONS) -> Any:
    """L2-regularised logistic regression by L-BFGS (the bias is not regularised). Deterministic."""
    np = _np()
    n_feat = len(d.vocab)
    bias = d.vocab.index("bias")
    sw = sample_weight / sample_weight.sum()
    reg = np.full(n_feat, l2)
    reg[bias] = 0.0

    def loss_grad(w: Any) -> tuple[float, Any]:
        z = np.bincount(d.rows, weights=w[d.cols], minlength=d.n)
        # log(1 + exp(-s z)) computed stably, s = +1 for y = 1 and -1 for y = 0
        s = np.where(y > 0.5, 1.0, -1.0)
        m = -s * z
        loss = float(np.sum(sw * (np.maximum(m, 0) + np.log1p(np.exp(-np.abs(m)))))) + 0.5 * float(np.sum(reg * w * w))
        p = 1.0 / (1.0 + np.exp(-z))
        r = sw * (p - y)
        grad = np.bincount(d.cols, weights=r[d.rows], minlength=n_feat) + reg * w
        return loss, grad

    w = np.zeros(n_feat)
    f, g = loss_grad(w)
    history: list[tuple[Any, Any]] = []
    for _ in range(iterations):
        q = g.copy()
        alphas = []
        for s_k, y_k in reversed(history):
            rho = 1.0 / float(y_k @ s_k)
            a = rho * float(s_k @ q)
            alphas.append((rho, a))
            q -= a * y_k
        if history:
            s_k, y_k = history[-1]
            q *= float(s_k @ y_k) / float(y_k @ y_k)
        for (s_k, y_k), (rho, a) in zip(history, reversed(alphas)):
            b = rho * float(y_k @ q)
            q += (a - b) * s_k
        direction = -q
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            history.clear()
            direction, slope = -g, -float(g @ g)
        step = 1.0
        while True:
            w_new = w + step * direction
            f_new, g_new = loss_grad(w_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s_vec, y_vec = w_new - w, g_new - g
        if float(s_vec @ y_vec) > 1e-12:
            history.append((s_vec, y_vec))
            history = history[-10:]
        if abs(f - f_new) < 1e-10:
            w, f, g = w_new, f_new, g_new
            break
        w, f, g = w_new, f_new, g_new
    return w


def predict(d: Design, w: Any) -> Any:
    np = _np()
    z = np.bincount(d.rows, weights=w[d.cols], minlength=d.n)
    return 1.0 / (1.0 + np.exp(-z))


def language_weights(examples: Sequence[Example]) -> Any:
    """Every language counts the same, whatever its number of examples."""
    np = _np()
    count: dict[str, int] = defaultdict(int)
    for e in examples:
        count[e.lang] += 1
    return np.asarray([1.0 / count[e.lang] for e in examples])


def topic_folds(examples: Sequence[Example], k: int, seed: int) -> list[int]:
    """A fold per example; all answers on one topic share a fold (so validation topics are unseen)."""
    topics = sorted({e.topic or e.id for e in examples})
    random.Random(seed).shuffle(topics)
    fold_of = {t: i % k for i, t in enumerate(topics)}
    return [fold_of[e.topic or e.id] for e in examples]


def cross_validate(examples: Sequence[Example], feats: Sequence[set[str]], seed: int, k: int) -> dict[str, Any]:
    """Out-of-fold p(refusal) for every L2 strength; returns the best strength, its predictions and accuracies."""
    np = _np()
    y = np.asarray([1.0 if e.refusal else 0.0 for e in examples])
    folds = np.asarray(topic_folds(examples, k, seed))
    results: dict[float, Any] = {}
    for l2 in L2_GRID:
        oof = np.zeros(len(examples))
        for fold in range(k):
            train = [i for i in range(len(examples)) if folds[i] != fold]
            test = [i for i in range(len(examples)) if folds[i] == fold]
            d = design([feats[i] for i in train])
            w = fit(d, y[train], language_weights([examples[i] for i in train]), l2)
            oof[test] = predict(design([feats[i] for i in test], d.vocab), w)
        results[l2] = oof
    accuracy = {l2: float(np.mean((p >= 0.5) == (y > 0.5))) for l2, p in results.items()}
    best = max(L2_GRID, key=lambda l2: (accuracy[l2], -l2))
    return {"l2": best, "oof": results[best], "accuracy": accuracy, "y": y}


def choose_threshold(p: Any) -> float:
    """The confidence threshold that leaves about TARGET_ABSTAIN of cross-validated answers unjudgeable."""
    np = _np()
    confidence = np.maximum(p, 1 - p)
    t = float(np.quantile(confidence, TARGET_ABSTAIN))
    return round(min(max(t, THRESHOLD_RANGE[0]), THRESHOLD_RANGE[1]), 3)


def data_hash(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def train(examples: Sequence[Example], *, seed: int = 0, folds: int = 5, data_sha256: str = "",
          progress: Any = None) -> tuple[Model, dict[str, Any]]:
    """The model and a report (cross-validation figures). ``progress(stage, done, total)`` is optional."""
    np = _np()
    if progress:
        progress("features", 0, 1)
    feats = featurize(examples)
    if progress:
        progress("features", 1, 1)
    cv = cross_validate(examples, feats, seed, folds) if folds > 1 else {"l2": L2_GRID[1], "oof": None, "accuracy": {}}
    if progress:
        progress("cross-validation", 1, 1)
    threshold = choose_threshold(cv["oof"]) if cv["oof"] is not None else 0.65
    y = np.asarray([1.0 if e.refusal else 0.0 for e in examples])
    d = design(feats)
    w = fit(d, y, language_weights(examples), cv["l2"])
    non = [i for i, e in enumerate(examples) if not e.refusal]
    yp = np.asarray([1.0 if examples[i].label == "partial" else 0.0 for i in non])
    dp = design([feats[i] for i in non])
    wp = fit(dp, yp, language_weights([examples[i] for i in non]), cv["l2"])
    if progress:
        progress("fit", 1, 1)
    by_lang: dict[str, int] = defaultdict(int)
    for e in examples:
        by_lang[e.lang] += 1
    report: dict[str, Any] = {"l2": cv["l2"], "threshold": threshold, "folds": folds, "seed": seed,
                              "cv_accuracy_by_l2": {f"{k:g}": round(v, 4) for k, v in cv["accuracy"].items()},
                              "n_examples": len(examples), "n_by_language": dict(sorted(by_lang.items())),
                              "n_features": len(d.vocab), "data_sha256": data_sha256}
    if cv["oof"] is not None:
        conf = np.maximum(cv["oof"], 1 - cv["oof"])
        judged = conf >= threshold
        correct = (cv["oof"] >= 0.5) == (cv["y"] > 0.5)
        report["cv"] = {"accuracy_unjudgeable_wrong": round(float(np.mean(correct & judged)), 4),
                        "accuracy_judged": round(float(np.mean(correct[judged])), 4),
                        "unjudgeable": round(float(np.mean(~judged)), 4)}
    model = Model(_sparse(d.vocab, w), _sparse(dp.vocab, wp), threshold,
                  {k: v for k, v in report.items() if k not in ("n_by_language",)})
    return model, report


def _sparse(vocab: list[str], w: Any) -> dict[str, float]:
    """Feature -> weight, rounded to 6 significant digits, dropping weights that are zero at that precision."""
    out = {}
    for f, v in zip(vocab, w.tolist()):
        r = float(f"{v:.6g}")
        if r != 0.0:
            out[f] = r
    return out


def calibration(model_path: Path, examples: Sequence[Example]) -> dict[str, Any]:
    """The judge's sensitivity (refusals called refusals) and specificity (non-refusals called non-refusals) per
    language and overall, with counts, measured on labelled answers it never trained on. Unjudgeable verdicts are
    counted apart and left out of both rates, as they are left out of every rate in a summary."""
    from refuseu.auditor.data.cases import Case
    from refuseu.auditor.judges.base import JudgeItem
    from refuseu.auditor.judges.classifier import ClassifierJudge

    judge = ClassifierJudge(model_path=str(model_path))
    items = [JudgeItem(e.id, Case(e.id, e.lang, "uncategorized", "none", (("user", e.prompt),)), e.response)
             for e in examples]
    verdicts = judge.judge_sync(items)
    cells: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e, v in zip(examples, verdicts):
        for key in (e.lang, "overall"):
            c = cells[key]
            if v.refused is None:
                c["unjudgeable"] += 1
            elif e.refusal:
                c["n_refusal"] += 1
                c["tp"] += v.refused
            else:
                c["n_other"] += 1
                c["tn"] += not v.refused

    def row(c: dict[str, int]) -> dict[str, Any]:
        return {"sensitivity": round(c["tp"] / c["n_refusal"], 4) if c["n_refusal"] else None,
                "specificity": round(c["tn"] / c["n_other"], 4) if c["n_other"] else None,
                "n_refusal": c["n_refusal"], "tp": c["tp"], "n_other": c["n_other"], "tn": c["tn"],
                "unjudgeable": c["unjudgeable"]}

    from refuseu.auditor.data.languages import language_order

    return {"judge": "classifier", "measured_on": sorted({e.split for e in examples}),
            "note": "frozen evaluation splits, never trained or tuned on",
            "by_language": {k: row(cells[k]) for k in sorted(cells, key=language_order) if k != "overall"},
            "overall": row(cells["overall"])}


def write_model(out: Path, model: Model, report: dict[str, Any], calib: dict[str, Any] | None) -> list[Path]:
    from refuseu.auditor.store import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    written = [out / MODEL_FILE]
    if calib is not None:
        write_text_atomic(out / CALIBRATION_FILE, json.dumps(calib, indent=2, ensure_ascii=False) + "\n")
        written.append(out / CALIBRATION_FILE)
    write_text_atomic(out / "training_report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    written.append(out / "training_report.json")
    return written
