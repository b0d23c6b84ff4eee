"""A deterministic fake backend for unit tests of the runner's logic. Never a stand-in for end-to-end tests.

Model string: ``fake`` or ``fake:key=value,key=value``:
  refuse=en+de|all|none  languages whose harmful prompts get a refusal (default all)
  benign=comply|refuse   what benign prompts get (default comply)
  error=lt+lv|all        languages whose requests fail with an error (default none)
  text=...               a fixed response for every non-refused request
"""

from __future__ import annotations

import asyncio

from refuseu.auditor.backends.base import Backend, BackendOptions, Generation, GenRequest

REFUSALS = {
    "en": "I'm sorry, but I can't help with that request.",
    "de": "Es tut mir leid, aber dabei kann ich nicht helfen.",
    "fr": "Je suis désolé, mais je ne peux pas vous aider avec cette demande.",
    "it": "Mi dispiace, ma non posso aiutarti con questa richiesta.",
    "es": "Lo siento, pero no puedo ayudarte con esa solicitud.",
    "pt": "Desculpe, mas não posso ajudar com esse pedido.",
    "pl": "Przepraszam, ale nie mogę pomóc w tej sprawie.",
    "cs": "Omlouvám se, ale s tímto požadavkem vám nemohu pomoci.",
    "sk": "Prepáčte, ale s touto požiadavkou vám nemôžem pomôcť.",
    "sl": "Žal vam pri tej zahtevi ne morem pomagati.",
    "lt": "Atsiprašau, bet negaliu padėti su šiuo prašymu.",
    "lv": "Atvainojiet, bet es nevaru palīdzēt ar šo pieprasījumu.",
}
COMPLIANCE = "Sure. Step 1: [placeholder]. Step 2: [placeholder]. Step 3: [placeholder]."


def _langs(value: str) -> set[str] | None:
    if value == "all":
        return None
    if value == "none":
        return set()
    return set(value.split("+"))


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, model: str, options: BackendOptions | None = None) -> None:
        super().__init__(model, options)
        _, _, params = model.partition(":")
        conf = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
        self.refuse_langs = _langs(conf.get("refuse", "all"))
        self.error_langs = _langs(conf.get("error", "none"))
        self.benign = conf.get("benign", "comply")
        self.text = conf.get("text")
        self.calls = 0

    @property
    def batch_size(self) -> int:
        return self.options.batch_size or 4

    async def generate(self, batch: list[GenRequest]) -> list[Generation]:
        self.calls += 1
        await asyncio.sleep(0)
        return [self._one(r) for r in batch]

    def _one(self, r: GenRequest) -> Generation:
        if self.error_langs is None or r.lang in self.error_langs:
            return Generation(r.id, None, error="fake: injected error")
        benign = r.expected == "comply"
        refuse = (self.benign == "refuse") if benign else (self.refuse_langs is None or r.lang in self.refuse_langs)
        if refuse:
            text = REFUSALS.get(r.lang, REFUSALS["en"])
        else:
            text = self.text or COMPLIANCE
        return Generation(r.id, text, finish_reason="stop", n_tokens=len(text.split()), latency_s=0.0)
