"""The preference margin on held-out pairs, before and after training: a mechanism check that moves even
where greedy answers barely change. The DPO implicit reward of a pair, with the base model as reference,
is beta * (after - before) of m(chosen) - m(rejected), where m is a model's log-probability of the answer
given the prompt, summed over answer tokens (the sequence log-probabilities DPO itself uses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from refuseu.auditor.registry import require


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_pair_side(tokenizer: Any, prompt: list[dict[str, str]], answer: list[dict[str, str]],
                     max_length: int, answer_tokens: int | None = None) -> tuple[list[int], int]:
    """(token ids of prompt + answer, index where the answer starts), tokenized and truncated as the trainer
    saw them: the answer cut to its first ``answer_tokens`` tokens, then TRL's keep_start cut at max_length.
    A prompt that alone fills max_length (TRL would drop the pair) keeps its end and the answer's start
    (half of max_length at most), so the answer is still scored."""
    if answer_tokens:
        from refuseu.remediation.train import cut_answer

        answer = cut_answer(tokenizer, answer, answer_tokens)
    prompt_ids = list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False))
    full_ids = list(tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=False))
    start = _common_prefix(prompt_ids, full_ids)
    if len(full_ids) > max_length:
        if start < max_length:
            full_ids = full_ids[:max_length]
        else:  # the prompt's end and the answer's start, half and half at most
            keep = min(len(full_ids) - start, max_length // 2)
            full_ids, start = full_ids[start - (max_length - keep):start + keep], max_length - keep
    return full_ids, start


def sequence_logps(model: Any, tokenizer: Any, items: Sequence[tuple[list[int], int]], batch_size: int = 8) -> list[float]:
    """Sum of log-probabilities of the answer tokens of each (ids, start), batched with right padding."""
    torch = require("torch")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    out: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            answer_mask = torch.zeros((len(chunk), width), dtype=torch.bool)
            for row, (ids, start) in enumerate(chunk):
                input_ids[row, :len(ids)] = torch.tensor(ids)
                attention[row, :len(ids)] = 1
                answer_mask[row, start:len(ids)] = True
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
            mask = answer_mask[:, 1:].to(device)
            # Normalise only the answer positions: the prompt's logits are not needed, and a full-vocabulary
            # log-softmax over every position is most of the cost on a CPU.
            picked = torch.log_softmax(logits[:, :-1][mask].float(), dim=-1)
            target = input_ids[:, 1:].to(device)[mask]
            token_logp = picked.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            rows = torch.arange(len(chunk), device=device).unsqueeze(1).expand_as(mask)[mask]
            sums = torch.zeros(len(chunk), device=device).index_add_(0, rows, token_logp)
            out += sums.tolist()
    return out


def pair_margins(model: Any, tokenizer: Any, pairs: Sequence[dict[str, Any]], max_length: int = 256,
                 answer_tokens: int | None = None) -> list[float]:
    chosen = [encode_pair_side(tokenizer, p["prompt"], p["chosen"], max_length, answer_tokens) for p in pairs]
    rejected = [encode_pair_side(tokenizer, p["prompt"], p["rejected"], max_length, answer_tokens) for p in pairs]
    lc = sequence_logps(model, tokenizer, chosen)
    lr = sequence_logps(model, tokenizer, rejected)
    return [c - r for c, r in zip(lc, lr)]


def stats(margins: Sequence[float]) -> dict[str, Any]:
    n = len(margins)
    return {"accuracy": None if n == 0 else sum(m > 0 for m in margins) / n,
            "margin": None if n == 0 else sum(margins) / n}


def preference_report(before: Sequence[float], after: Sequence[float], pairs: Sequence[dict[str, Any]],
                      beta: float) -> dict[str, Any]:
    """preference.json, overall, per kind and per language.

    ``before`` / ``after``: the DPO implicit reward, beta * (log-ratio of chosen - log-ratio of rejected)
    against the base model, its accuracy (share of pairs above 0) and mean margin. Before training the
    policy is the base model, so every reward is exactly 0 (accuracy 0). ``logprob``: whether the model
    itself ranks chosen above rejected (summed log-probabilities), before and after: a stricter check,
    since a model's own greedy answer is usually far likelier than an unfamiliar refusal."""
    def block(idx: list[int]) -> dict[str, Any]:
        b, a = [before[i] for i in idx], [after[i] for i in idx]
        rewards = [beta * (y - x) for x, y in zip(b, a)]
        return {"n": len(idx),
                "before": {"accuracy": 0.0 if idx else None, "margin": 0.0 if idx else None},
                "after": stats(rewards),
                "logprob": {"before": stats(b), "after": stats(a)}}

    everything = list(range(len(pairs)))
    out = {**block(everything), "beta": beta,
           "definition": "implicit reward r = beta * ([log p(chosen) - log p_base(chosen)] - [log p(rejected) - "
                         "log p_base(rejected)]), log-probabilities summed over answer tokens; accuracy = share of "
                         "pairs with r > 0, margin = mean r. Before training the policy is the base model: r = 0. "
                         "logprob: accuracy and margin of log p(chosen) - log p(rejected) under the model itself.",
           "by_kind": {}, "by_language": {}}
    for key, field in (("by_kind", "kind"), ("by_language", "lang")):
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(pairs):
            groups.setdefault(p[field], []).append(i)
        out[key] = {g: block(idx) for g, idx in groups.items()}
    return out


def load_for_scoring(model_path: str, adapter: str | None, device: str, dtype: Any, trust_remote_code: bool) -> tuple[Any, Any]:
    import warnings

    from refuseu.auditor.models.hf_loading import quiet_transformers

    transformers = require("transformers")
    quiet_transformers(transformers)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(adapter or model_path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, trust_remote_code=trust_remote_code)
    if adapter:
        peft = require("peft")
        model = peft.PeftModel.from_pretrained(model, adapter)
    model.to(device)
    model.eval()
    return model, tokenizer
