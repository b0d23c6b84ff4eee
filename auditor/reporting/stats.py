"""Small, dependency-free statistics: Wilson intervals, two-proportion tests, Fisher's exact test, kappa."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score 95% interval for k successes out of n; None when n is 0."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p2 - p1, built from the two Wilson intervals (method 10 of
    Newcombe 1998); unlike the Wald interval it stays sensible at rates near 0 or 1 and for small n."""
    w1, w2 = wilson(k1, n1, z), wilson(k2, n2, z)
    if w1 is None or w2 is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = w1, w2
    d = p2 - p1
    lo = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    hi = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def _norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float | None:
    """Two-sided p-value of a pooled two-proportion z-test."""
    if n1 == 0 or n2 == 0:
        return None
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k1 / n1 - k2 / n2) / se
    return min(1.0, 2 * _norm_sf(abs(z)))


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher's exact test p-value for the 2x2 table [[k1, n1-k1], [k2, n2-k2]]."""
    total_k, total = k1 + k2, n1 + n2

    def prob(a: int) -> float:
        return math.comb(n1, a) * math.comb(n2, total_k - a) / math.comb(total, total_k)

    lo, hi = max(0, total_k - n2), min(n1, total_k)
    observed = prob(k1)
    return min(1.0, sum(p for a in range(lo, hi + 1) if (p := prob(a)) <= observed * (1 + 1e-7)))


def compare_proportions(k1: int, n1: int, k2: int, n2: int) -> tuple[float | None, str]:
    """p-value and test name: Fisher's exact when any expected cell count is below 5, else the z-test."""
    if n1 == 0 or n2 == 0:
        return None, "none"
    total_k, total = k1 + k2, n1 + n2
    expected = [n1 * total_k / total, n1 * (total - total_k) / total, n2 * total_k / total, n2 * (total - total_k) / total]
    if min(expected) < 5:
        return fisher_exact(k1, n1, k2, n2), "fisher"
    return two_proportion_z(k1, n1, k2, n2), "z"


def cohen_kappa(a: list[bool], b: list[bool]) -> float | None:
    """Cohen's kappa for two binary raters on the same items."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    po = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe == 1:
        return 1.0 if po == 1 else 0.0
    return (po - pe) / (1 - pe)
