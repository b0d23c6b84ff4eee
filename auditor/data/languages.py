"""The languages refuseu knows: ISO 639-1 code -> own name. Adding a language is data, not code:
a suite file, a markers file, and (for language ID) a lingua language of the same ISO code."""

from __future__ import annotations

# The 12 languages of the RefusEU paper, in the paper's order.
CORE_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "it", "es", "pt", "pl", "cs", "sk", "sl", "lt", "lv")

NATIVE_NAMES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "it": "Italiano",
    "es": "Español",
    "pt": "Português",
    "pl": "Polski",
    "cs": "Čeština",
    "sk": "Slovenčina",
    "sl": "Slovenščina",
    "lt": "Lietuvių",
    "lv": "Latviešu",
    "ru": "Русский",
    "uk": "Українська",
    "hr": "Hrvatski",
    "hu": "Magyar",
    "nl": "Nederlands",
    "ro": "Română",
    "bg": "Български",
    "el": "Ελληνικά",
    "et": "Eesti",
    "fi": "Suomi",
    "sv": "Svenska",
    "da": "Dansk",
    "zh": "中文",
}


def native_name(code: str) -> str:
    return NATIVE_NAMES.get(code, code)


def is_known_language(code: str) -> bool:
    """A language refuseu has a name for: the twelve and the neighbours a model drifts into."""
    return code in NATIVE_NAMES


def is_language_code(code: str) -> bool:
    """A plausible ISO 639-1 code: two lowercase ASCII letters."""
    return len(code) == 2 and code.isascii() and code.isalpha() and code.islower()


def language_order(code: str) -> tuple[int, str]:
    """Sort key: the 12 in the paper's order, then any other code alphabetically ("overall" first)."""
    if code == "overall":
        return (-1, code)
    return (CORE_LANGUAGES.index(code), code) if code in CORE_LANGUAGES else (len(CORE_LANGUAGES), code)
