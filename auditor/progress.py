"""The progress callback every long stage reports to: ``progress(stage, done, total)``. The CLI draws it as
rich bars; library callers may pass None."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]
