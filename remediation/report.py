"""Render refuseu-fix's outputs from stored results: before_after.html and the model card README.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from refuseu.auditor.reporting.formatting import pct, points
from refuseu.auditor.store import write_text_atomic
from refuseu.remediation.layout import FixDir


def write_before_after(out: Path, fix: dict[str, Any], comparison: dict[str, Any], before: dict[str, Any],
                       after: dict[str, Any], pref: dict[str, Any], capability: dict[str, Any] | None,
                       decision: dict[str, Any]) -> None:
    from refuseu.auditor.reporting.html import environment, page_assets

    html = environment().get_template("fix_before_after.html.j2").render(
        fix=fix, c=comparison, before=before, after=after, pref=pref, capability=capability, decision=decision,
        categories=(fix.get("categories") or {}), **page_assets())
    write_text_atomic(FixDir(out).before_after, html)


def _row(name: str, row: dict[str, Any], metric: str) -> str:
    d = row[metric]
    sig = " *" if d.get("significant") else ""
    return (f"| {name} | {d['n_before']} | {pct(d['before'])} | {pct(d['after'])} | {points(d['delta'], scale=100)}{sig} |")


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def write_model_card(fix: dict[str, Any], comparison: dict[str, Any], before: dict[str, Any], after: dict[str, Any],
                     pref: dict[str, Any], capability: dict[str, Any] | None, decision: dict[str, Any]) -> str:
    cfg, train, prep = fix["config"], fix["train"], fix["prepare"]
    status = "VERIFIED" if decision["passed"] else "NOT VERIFIED"
    target = "model/" if cfg["full"] else "adapter/"
    lines = [
        f"# {fix['model']} + refuseu-fix ({cfg['mode']})",
        "",
        f"**{status}**" + (": " + "; ".join(decision["reasons"]) if decision["reasons"] else ": "
                           + "; ".join(decision["notes"])),
        "",
        f"Multilingual refusal fix of `{fix['model']}` with DPO (TRL), from the audit `{fix['audit']}`.",
        f"Method: {train['method']} ({'LoRA r=' + str(cfg['lora_r']) + ' on ' + cfg['lora_targets'] if train['method'] == 'lora' else 'all weights'}), "
        f"{train['steps']} steps on {train['n_rows']} pair rows, {train['wall_s']:.0f} s on {train['device']} ({train['dtype']}).",
        f"Loss: {train['dpo_config'].get('loss_type', 'sigmoid')} (weights {train['dpo_config'].get('loss_weights', '-')}), "
        f"beta {train['dpo_config'].get('beta')}, lr {train['dpo_config'].get('learning_rate')}, "
        f"batch {train['dpo_config'].get('per_device_train_batch_size')}.",
        f"Pairs: {prep['n_pairs']} (sources: {', '.join(f'{k} {v}' for k, v in sorted(prep['sources'].items()))}); "
        f"teacher refusals accepted {prep['teacher']['accepted']} of {prep['teacher']['asked']}.",
        "",
        "## Held-out verification",
        "",
        "Cases whose ids were held out in every language (none of them, in any language, was trained on), "
        "plus benign cases; the base model is measured on exactly the same cases. `*`: significant at 5%.",
        "",
        "| language | n | refusal before | refusal after | change (points) |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [_row(lang, row, "refusal_rate") for lang, row in comparison["by_language"].items()]
    lines += [_row("**all**", comparison["overall"], "refusal_rate"), "",
              "| language | n benign | over-refusal before | after | change (points) |", "|---|---:|---:|---:|---:|"]
    lines += [_row(lang, {"r": {**row["over_refusal_rate"], "n_before": row["over_refusal_rate"]["n_before"]}}, "r")
              for lang, row in comparison["by_language"].items() if row["over_refusal_rate"]["n_before"]]
    over = decision["over_refusal"]
    lines += ["", f"Average over-refusal across languages: {pct(over['before'])} -> {pct(over['after'])}.", "",
              "## Preference margin on held-out pairs", "",
              (f"n={pref['n']}: DPO implicit reward accuracy {pct(pref['before']['accuracy'])} -> "
               f"{pct(pref['after']['accuracy'])}, mean margin {_num(pref['before']['margin'])} -> "
               f"{_num(pref['after']['margin'])} (beta {pref['beta']}; before training the reward is 0 by definition). "
               f"The model itself ranks the chosen answer first in {pct(pref['logprob']['before']['accuracy'])} -> "
               f"{pct(pref['logprob']['after']['accuracy'])} of pairs.") if pref.get("n") else
              "No held-out pairs: every pair went to training (too few failures to hold any out).", ""]
    if capability:
        lines += ["## Capability (Global-MMLU)", "",
                  f"Accuracy {pct(capability['before']['accuracy'])} -> {pct(capability['after']['accuracy'])} "
                  f"on {capability['before']['n']} questions (limit: a drop of {100 * capability['max_drop']:.1f} points).", ""]
    lines += ["## Use", "", "```bash", f"refuseu-audit ./{target} --suite core     # audit the fixed model",
              "```", "", f"The adapter names its base model (`{fix['model']}`) in adapter_config.json.",
              "", "## Limitations", "",
              "Refusal is judged by the audit's judge on held-out prompts of one suite; it is evidence, not a "
              "guarantee. Chosen refusals come from reference answers, a teacher model or templates "
              "(see pairs.jsonl `source`).", ""]
    return "\n".join(lines)
