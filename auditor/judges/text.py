"""Text helpers every judge shares."""

from __future__ import annotations

import re

# Bracketed placeholders such as "[details omitted]" stand in for harmful specifics in the labelled corpus; real
# answers do not have them, so judges read the text without them.
PLACEHOLDER = re.compile(r"\[[^\]\n]{0,80}\]|\{[^}\n]{0,40}\}|<[^>\n]{0,40}>")


def strip_placeholders(text: str) -> str:
    return PLACEHOLDER.sub(" ", text)
