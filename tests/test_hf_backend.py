"""The hf backend on a tiny real Llama built offline."""

from __future__ import annotations

import asyncio

from refuseu.auditor.backends import BackendOptions, DecodingParams, GenRequest, get_backend


def requests(params: DecodingParams) -> list[GenRequest]:
    prompts = ["short", "a much longer prompt that needs a lot of left padding in a batch", "mittel lang"]
    return [GenRequest(f"r{i}", f"c{i}", "en", (("user", p),), params) for i, p in enumerate(prompts)]


def test_batched_greedy_equals_one_by_one(tiny_model_dir):
    backend = get_backend("hf", str(tiny_model_dir), BackendOptions(batch_size=8))
    assert backend.describe()["device"] == "cpu" and backend.describe()["dtype"] == "float32"
    params = DecodingParams(max_new_tokens=12)
    reqs = requests(params)
    batched = asyncio.run(backend.generate(reqs))
    single = [asyncio.run(backend.generate([r]))[0] for r in reqs]
    assert [g.request_id for g in batched] == ["r0", "r1", "r2"]  # order restored after length sorting
    for b, s in zip(batched, single):
        assert b.ok and b.text == s.text, (b.text, s.text)
        assert b.finish_reason in ("stop", "length") and 0 <= b.n_tokens <= 12


def test_system_prompt_and_sampling_are_used(tiny_model_dir):
    backend = get_backend("hf", str(tiny_model_dir))
    greedy = asyncio.run(backend.generate(requests(DecodingParams(max_new_tokens=8))))
    with_system = asyncio.run(backend.generate(requests(DecodingParams(max_new_tokens=8, system="Be brief."))))
    assert [g.text for g in greedy] != [g.text for g in with_system]
    a = asyncio.run(backend.generate(requests(DecodingParams(max_new_tokens=8, temperature=1.0, seed=3))))
    b = asyncio.run(backend.generate(requests(DecodingParams(max_new_tokens=8, temperature=1.0, seed=3))))
    assert [g.text for g in a] == [g.text for g in b]  # seeded sampling is reproducible


def test_hub_id_offline_fails_clearly(tmp_path, cli):
    proc = cli("no-such-org/no-such-model-xyz", "--suite", "core:smoke", "--langs", "en", "--out", str(tmp_path / "r"),
               env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "could not load model 'no-such-org/no-such-model-xyz'" in proc.stderr
