"""
Misbehaviour: what a peer's protocol violations cost its host.

L{Misbehavior} counts violations per remote host and, at
C{discourage_threshold}, has the ban manager discourage the host for
C{DISCOURAGE_S} (Bitcoin Core's C{Misbehaving} and C{MaybeDiscourageAndDisconnect},
without scores: every violation weighs the same). The peer that broke the
protocol closes itself; this only decides what is remembered of its host.

It owns the per-host counts and the total; it knows nothing of sockets,
slots or what the violation was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from twisted.logger import Logger, LogLevel

from bitp2p.constants import DISCOURAGE_S
from bitp2p.formatting import duration as _duration
from bitp2p.logs import UNSUMMARISED

if TYPE_CHECKING:
    from bitp2p.banman import BanMan
    from bitp2p.errors import ProtocolViolation
    from bitp2p.logs import RepeatedEvents
    from bitp2p.peer import Peer

log = Logger()

# The kind of the discouragement line (RepeatedEvents): anyone with many
# addresses can have one host after another discouraged.
DISCOURAGED = "Hosts discouraged"


class Misbehavior:
    """
    Violations by host, and the discouragement they lead to.

    @ivar total: violations since start.
    @param repeated: where discouragements are logged (the node's
        L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}).
    """

    def __init__(
        self,
        reactor,
        bans: Callable[[], BanMan],
        threshold: int,
        repeated: RepeatedEvents = UNSUMMARISED,
    ) -> None:
        self._reactor = reactor
        self._repeated = repeated
        self._bans = bans
        self._threshold = threshold
        self._counts: dict[str, int] = {}
        self.total = 0

    def violations(self, host: str) -> int:
        """
        Violations counted against C{host} since it was last discouraged.
        """
        return self._counts.get(host, 0)

    def violationFrom(self, peer: Peer, violation: ProtocolViolation) -> None:
        """
        C{peer} broke the protocol (it closes itself afterwards).
        """
        self.total += 1
        host = getattr(peer.remote_address, "host", "") or ""
        if not host:
            return
        count = self._counts.get(host, 0) + 1
        if count >= self._threshold:
            self._counts.pop(host, None)
            self._bans().discourage(host, self._reactor.seconds() + DISCOURAGE_S)
            self._repeated.emit(
                log,
                LogLevel.warn,
                DISCOURAGED,
                host,
                "Discouraging {host} for {duration} after {count} protocol violations",
                host=host,
                duration=_duration(DISCOURAGE_S),
                hours=DISCOURAGE_S // 3600,
                count=count,
            )
        else:
            self._counts[host] = count


__all__ = ["Misbehavior"]
