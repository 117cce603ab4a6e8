"""
Retry delays: how long to wait before dialing an address, or a manual peer,
again after failures.

It owns the delay policies only (pure functions of the failure count); it
knows nothing of connections or addresses.
"""

from __future__ import annotations

from bitp2p.constants import MANUAL_RETRY_MAX_S, RETRY_BASE_S, RETRY_MAX_S


def retry_delay(failures: int) -> float:
    """
    Seconds to wait after a try, given the failures since the last success:
    C{RETRY_BASE_S * 2**(failures-1)}, at most C{RETRY_MAX_S}; 0 for none.
    So a dead address is retried after 2, 4, 8 ... seconds, up to every 10
    minutes, never in a tight loop.
    """
    if failures <= 0:
        return 0.0
    return float(min(RETRY_BASE_S * 2 ** min(failures - 1, 32), RETRY_MAX_S))


def manual_retry_delay(failures: int) -> float:
    """
    The backoff policy of a manual peer (C{--addnode}, C{--connect}): as
    L{retry_delay}, but at most C{MANUAL_RETRY_MAX_S}, since the operator
    asked for that peer.
    """
    return min(retry_delay(failures), MANUAL_RETRY_MAX_S)


__all__ = ["manual_retry_delay", "retry_delay"]
