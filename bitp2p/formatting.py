"""
Short human durations, for the console, C{bitp2p-cli} and the log lines
alike, so that a ban reads "for 1d" wherever it is read (no Twisted here:
the CLI imports it).

It owns how durations are printed; it imports nothing of Twisted or of the
node.
"""

from __future__ import annotations

__all__ = ["age", "duration", "span"]


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


def duration(seconds: float) -> str:
    """
    A human duration to two units, for a length of time chosen (a ban, a
    retry): C{1d}, C{1d 1h}, C{1h 30m}, C{45s}. L{span} in its one unit
    would round C{1h 30m} down to C{1h}.
    """
    seconds = int(max(0.0, seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        elif parts:
            break  # the next unit after the largest, only when consecutive
        if len(parts) == 2:
            break
    return " ".join(parts) or "0s"
