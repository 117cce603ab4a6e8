"""
Short human durations, for the console and C{bitp2p-cli} alike (no
Twisted here: the CLI imports it).

It owns how durations are printed; it imports nothing of Twisted or of the
node.
"""

from __future__ import annotations

__all__ = ["age", "span"]


def age(now: float, then: float | None) -> str:
    """
    A short human duration since C{then}: C{-} when never.
    """
    if not then:
        return "-"
    return span(now - then)


def span(seconds: float) -> str:
    """
    A short human duration: C{45s}, C{3m}, C{2h}, C{1d}.
    """
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
