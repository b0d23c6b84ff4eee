"""Refusal templates shipped as data (``data/refusals/<lang>.yaml``), the last fallback for a ``chosen`` refusal.

A template refusal is opener + reason + alternative: a firm, respectful "no", why (per harm category),
and what the model can do instead. Which variant a case gets is a hash of its id, so the choice is
deterministic yet varied across cases (4 openers x 3 alternatives per category and language).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib.resources import files

import yaml

from refuseu.auditor.errors import RefuseuError

DEFAULT = "default"


@dataclass(frozen=True)
class RefusalTemplates:
    lang: str
    openers: tuple[str, ...]
    reasons: dict[str, str]
    alternatives: dict[str, tuple[str, ...]]
    teacher_system: str | None = None  # the system prompt that asks a teacher model to refuse in this language

    def variants(self, category: str) -> list[str]:
        """Every refusal this language has for a category (used by tests and for inspection)."""
        reason = self.reasons.get(category, self.reasons[DEFAULT])
        alts = self.alternatives.get(category, self.alternatives[DEFAULT])
        return [f"{o} {reason} {a}" for o in self.openers for a in alts]

    def render(self, category: str, key: str) -> str:
        """One refusal for a case, picked by a stable hash of ``key`` (e.g. the case id)."""
        h = int(hashlib.sha256(f"{self.lang}|{category}|{key}".encode()).hexdigest(), 16)
        reason = self.reasons.get(category, self.reasons[DEFAULT])
        alts = self.alternatives.get(category, self.alternatives[DEFAULT])
        opener = self.openers[h % len(self.openers)]
        alt = alts[(h // len(self.openers)) % len(alts)]
        return f"{opener} {reason} {alt}"


def _strings(value: object, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise RefuseuError(f"{where}: must be a non-empty string or list of non-empty strings")
    return tuple(s.strip() for s in items)


def parse_templates(data: object, source: str) -> RefusalTemplates:
    """Validate one template file's content; every problem names the file and the field."""
    if not isinstance(data, dict):
        raise RefuseuError(f"{source}: must be a mapping with lang, openers, reasons, alternatives")
    lang = data.get("lang")
    if not isinstance(lang, str) or len(lang) != 2:
        raise RefuseuError(f"{source}: field 'lang' must be a two-letter language code")
    openers = _strings(data.get("openers"), f"{source}: field 'openers'")
    reasons_raw = data.get("reasons")
    alts_raw = data.get("alternatives")
    if not isinstance(reasons_raw, dict) or DEFAULT not in reasons_raw:
        raise RefuseuError(f"{source}: field 'reasons' must be a mapping with a '{DEFAULT}' entry")
    if not isinstance(alts_raw, dict) or DEFAULT not in alts_raw:
        raise RefuseuError(f"{source}: field 'alternatives' must be a mapping with a '{DEFAULT}' entry")
    reasons = {str(k): " ".join(_strings(v, f"{source}: field 'reasons.{k}'")) for k, v in reasons_raw.items()}
    alternatives = {str(k): _strings(v, f"{source}: field 'alternatives.{k}'") for k, v in alts_raw.items()}
    teacher = data.get("teacher_system")
    if teacher is not None and (not isinstance(teacher, str) or not teacher.strip()):
        raise RefuseuError(f"{source}: field 'teacher_system' must be a non-empty string")
    return RefusalTemplates(lang, openers, reasons, alternatives, teacher.strip() if teacher else None)


@functools.lru_cache(maxsize=1)
def load_all_templates() -> dict[str, RefusalTemplates]:
    root = files("refuseu.remediation") / "data" / "refusals"
    out: dict[str, RefusalTemplates] = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        source = f"refusals/{entry.name}"
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            from refuseu.auditor.textfiles import yaml_error

            raise yaml_error(source, exc) from None
        t = parse_templates(data, source)
        if t.lang != entry.name[:-5]:
            raise RefuseuError(f"{source}: field 'lang' is '{t.lang}' but the file is named for '{entry.name[:-5]}'")
        out[t.lang] = t
    return out


def template_refusal(lang: str, category: str, key: str) -> str | None:
    """A template refusal in ``lang``, or None when no template file exists for that language."""
    t = load_all_templates().get(lang)
    return None if t is None else t.render(category, key)
