"""How numbers look on every output (HTML, Markdown, JUnit, the terminal, refuseu-fix's report), defined once."""

from __future__ import annotations

NONE = "–"


def pct(x: float | None, digits: int = 1, width: int = 0, none: str = NONE) -> str:
    """A share as a percentage: 0.125 -> '12.5%'. ``width`` right-aligns the number (terminal tables)."""
    if x is None:
        return none.rjust(width + 1) if width else none
    return f"{100 * x:{width}.{digits}f}%"


def interval(ci: list[float] | tuple[float, float] | None, digits: int = 1) -> str:
    """A 95% interval of shares as '[12.5, 30.1]' (percent); empty when there is none."""
    return "" if not ci else f"[{100 * ci[0]:.{digits}f}, {100 * ci[1]:.{digits}f}]"


def points(x: float | None, scale: float = 1.0) -> str:
    """Signed points with one decimal ('+3.2', '-0.5'); a change that rounds to zero is '0.0', never '-0.0'.
    ``scale=100`` turns a difference of shares into points."""
    if x is None:
        return NONE
    v = round(x * scale, 1)
    return "0.0" if v == 0 else f"{v:+.1f}"


def pvalue(p: float | None) -> str:
    if p is None:
        return NONE
    return "<0.001" if p < 0.001 else f"{p:.3f}"
