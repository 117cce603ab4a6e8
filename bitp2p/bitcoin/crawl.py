"""
A crawler of a Bitcoin network: what bitnodes' crawler does, on Twisted.

From its seeds (C{HOST:PORT} strings, or the network's DNS seeds with all
their A and AAAA records), the L{Crawler} dials every address it learns,
at most C{concurrency} at once and C{rate_per_s} new connections a second.
On each connection it speaks just enough of the protocol, as Bitcoin Core
would as the dialing side:

  1. it sends its C{version} (services 0, relay false, user agent
     C{/bitp2p:VERSION/}); on the peer's C{version} it sends C{wtxidrelay}
     and C{sendaddrv2} (to a peer of protocol 70016 or later), then
     C{verack};
  2. on the peer's C{verack} (the handshake latency is the time from the
     connection to it) it sends a C{ping} (its round trip to the C{pong}
     is measured) and a C{getaddr};
  3. it collects C{addr} / C{addrv2}: the answer is the first one of more
     than one entry, or of one entry that is not the peer's own address
     (Core may first announce itself alone, and answers C{getaddr} from a
     cache, once, on its Poisson addr timer); once the answer and the
     C{pong} are in, or C{addr_wait_s} after the C{getaddr}, it
     disconnects. A peer that sends no C{addr} at all within C{quiet_s}
     of the C{getaddr} has none to give (a recent Core answers at once,
     or not at all when its cache is empty) and is left then.

Everything else the peer sends (C{inv}, C{sendcmpct}, C{feefilter},
C{getheaders}, ...) is ignored; a C{ping} is answered. A wrong magic or a
malformed header ends the connection with that error on the record.

Each address is a L{NodeRecord}. Addresses learned are deduplicated; those
of networks the crawler can reach (IPv4, IPv6) are dialed, the others
(Tor, I2P, CJDNS) only recorded as known. A loopback or private address is
dialed only when a peer on a loopback or private address told of it (as
bitp2p's address manager takes them): a peer on the Internet cannot make
the crawler scan its local network. L{Snapshot} holds the records and
writes them as JSON or CSV.

It owns the crawl (its connections, queue, pacing and records); it knows
nothing of the node (L{bitp2p.node}), its peers or its address manager.
Bytes are the codec's (L{bitp2p.bitcoin.codec}).
"""

from __future__ import annotations

import collections
import csv
import io
import json
import random
from typing import Callable, Iterable

import attrs
from twisted.internet import defer, error as netError
from twisted.internet.interfaces import IResolutionReceiver
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from bitp2p.address import (
    Address,
    AddressError,
    address_network,
    is_local_range,
    is_reachable,
    is_routable,
    split_host_port,
)
from bitp2p.bitcoin import codec
from bitp2p.bitcoin.codec import (
    BIP0031_VERSION,
    HEADER_SIZE,
    WTXID_RELAY_VERSION,
    AddrEntry,
    BadHeader,
    MalformedPayload,
)
from bitp2p.bitcoin.networks import Network, network as networkNamed
from bitp2p.bitcoin.wire import USER_AGENT
from bitp2p.constants import (
    CRAWL_ADDR_QUIET_S,
    CRAWL_ADDR_WAIT_S,
    CRAWL_CONCURRENCY,
    CRAWL_RATE_PER_S,
    CRAWL_TIMEOUT_S,
)

log = Logger()


@attrs.define
class NodeRecord:
    """
    What the crawl knows of one address.

    @ivar address: the address.
    @ivar network: C{"ipv4"}, C{"ipv6"}, C{"onion"}, C{"i2p"} or C{"cjdns"}.
    @ivar time: when it was dialed (when it was learned, if never dialed).
    @ivar source: the peer that told of it (L{None} for a seed).
    @ivar tried: whether it was dialed.
    @ivar reachable: whether the handshake completed (its C{version} and
        C{verack} came).
    @ivar error: why the connection ended early (L{None}: it did not).
    @ivar services: the service bits of its C{version}.
    @ivar version: the protocol version of its C{version} (0: none came).
    @ivar user_agent: its user agent.
    @ivar start_height: its start height.
    @ivar relay: its relay flag (L{None}: no C{version}).
    @ivar connect_s: from dialing to the connection (s).
    @ivar handshake_s: from the connection to its C{verack} (s).
    @ivar ping_s: the round trip of our C{ping} to its C{pong} (s).
    @ivar addresses: the distinct addresses it told of.
    """

    address: Address
    network: str
    time: float
    source: Address | None = None
    tried: bool = False
    reachable: bool = False
    error: str | None = None
    services: int = 0
    version: int = 0
    user_agent: str = ""
    start_height: int = 0
    relay: bool | None = None
    connect_s: float | None = None
    handshake_s: float | None = None
    ping_s: float | None = None
    addresses: int = 0

    @property
    def service_names(self) -> list[str]:
        return codec.serviceNames(self.services)

    def asDict(self) -> dict:
        """
        The record as JSON-ready values (addresses as strings).
        """
        return {
            "address": str(self.address),
            "network": self.network,
            "time": round(self.time, 3),
            "source": None if self.source is None else str(self.source),
            "tried": self.tried,
            "reachable": self.reachable,
            "error": self.error,
            "services": self.services,
            "service_names": " ".join(self.service_names),
            "version": self.version,
            "user_agent": self.user_agent,
            "start_height": self.start_height,
            "relay": self.relay,
            "connect_s": _rounded(self.connect_s),
            "handshake_s": _rounded(self.handshake_s),
            "ping_s": _rounded(self.ping_s),
            "addresses": self.addresses,
        }


FIELDS = tuple(attrs.fields_dict(NodeRecord)) + ("service_names",)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


def _top(counter: collections.Counter) -> dict:
    return dict(counter.most_common())


@attrs.define
class Snapshot:
    """
    The result of a crawl.

    @ivar network: the network's name.
    @ivar started: when the crawl started (the reactor's clock).
    @ivar ended: when it ended.
    @ivar records: one L{NodeRecord} per address known, in the order
        learned.
    @ivar stopped: whether it was stopped before the end (L{Crawler.stop}).
    """

    network: str
    started: float
    ended: float
    records: list[NodeRecord]
    stopped: bool = False

    @property
    def reachable(self) -> list[NodeRecord]:
        return [r for r in self.records if r.reachable]

    def summary(self) -> dict:
        """
        Counts: C{reachable}, C{tried}, C{known}; over the reachable nodes,
        C{by_version}, C{by_user_agent}, C{by_services} (the service
        names, C{"none"} for 0) and C{by_network}; C{known_by_network};
        C{errors} (by error); C{duration_s} and C{handshakes_per_s}.
        """
        reachable = self.reachable
        tried = sum(1 for r in self.records if r.tried)
        duration = max(self.ended - self.started, 0.0)
        return {
            "network": self.network,
            "reachable": len(reachable),
            "tried": tried,
            "known": len(self.records),
            "stopped": self.stopped,
            "duration_s": round(duration, 3),
            "handshakes_per_s": round(len(reachable) / duration, 1) if duration else 0.0,
            "by_version": _top(collections.Counter(r.version for r in reachable)),
            "by_user_agent": _top(collections.Counter(r.user_agent for r in reachable)),
            "by_services": _top(
                collections.Counter(" ".join(r.service_names) or "none" for r in reachable)
            ),
            "by_network": _top(collections.Counter(r.network for r in reachable)),
            "known_by_network": _top(collections.Counter(r.network for r in self.records)),
            "errors": _top(
                collections.Counter(_errorKind(r.error) for r in self.records if r.error)
            ),
        }

    def toJSON(self) -> str:
        """
        The snapshot as one JSON document: the network, start and end, the
        summary and every record.
        """
        return json.dumps(
            {
                "network": self.network,
                "started": self.started,
                "ended": self.ended,
                "summary": self.summary(),
                "nodes": [r.asDict() for r in self.records],
            },
            indent=1,
        )

    def toCSV(self) -> str:
        """
        The records as CSV, one line each after a header of L{FIELDS}
        (empty cells for L{None}).
        """
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in self.records:
            writer.writerow(record.asDict())
        return out.getvalue()

    def write(self, path: str) -> None:
        """
        Write the snapshot to C{path}: JSON or CSV as its extension says.

        @raise ValueError: for another extension.
        """
        text = self.toJSON() if outputFormat(path) == "json" else self.toCSV()
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def outputFormat(path: str) -> str:
    lower = path.lower()
    for ext in ("json", "csv"):
        if lower.endswith("." + ext):
            return ext
    raise ValueError(f"{path!r}: the output file must end in .json or .csv")


def _errorKind(error: str) -> str:
    # "wrong network magic 0b110907 (expected ...)": the part before details.
    return error.split(":")[0].split(" (")[0]


@attrs.frozen
class Progress:
    """
    Where a crawl stands.

    @ivar tried: addresses dialed so far.
    @ivar reachable: handshakes completed.
    @ivar queued: addresses waiting to be dialed.
    @ivar in_flight: connections (or attempts) open.
    @ivar known: addresses known.
    @ivar elapsed_s: time since the start.
    """

    tried: int
    reachable: int
    queued: int
    in_flight: int
    known: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """
        Addresses tried a second.
        """
        return self.tried / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Crawler:
    """
    One crawl of a Bitcoin network.

    @param reactor: the reactor (C{IReactorTCP}, C{IReactorTime}; its
        C{nameResolver} resolves seed names unless C{resolver} is given).
    @param network: a L{Network} or its name.
    @param seeds: C{HOST:PORT} strings (HOST a name or an IP); L{None}: the
        network's DNS seeds on its default port.
    @param concurrency: most connections open at once.
    @param timeout_s: bound on connecting, and on the handshake.
    @param addr_wait_s: how long the answer to C{getaddr} is awaited.
    @param quiet_s: how long after C{getaddr} a peer that sent no C{addr}
        at all is awaited.
    @param max_nodes: most addresses dialed (L{None}: no bound).
    @param rate_per_s: most new connections a second.
    @param progress: called with a L{Progress} after each attempt ends.
    @param resolver: an C{IHostnameResolver} for seed names.
    @param rng: the source of nonces.
    """

    def __init__(
        self,
        reactor,
        network: Network | str,
        seeds: Iterable[str] | None = None,
        concurrency: int = CRAWL_CONCURRENCY,
        timeout_s: float = CRAWL_TIMEOUT_S,
        addr_wait_s: float = CRAWL_ADDR_WAIT_S,
        quiet_s: float = CRAWL_ADDR_QUIET_S,
        max_nodes: int | None = None,
        rate_per_s: float = CRAWL_RATE_PER_S,
        progress: Callable[[Progress], None] | None = None,
        resolver=None,
        rng: random.Random | None = None,
    ) -> None:
        if min(concurrency, rate_per_s, timeout_s, addr_wait_s, quiet_s) <= 0:
            raise ValueError("concurrency, rate, timeout and waits must be positive")
        self._reactor = reactor
        self.network = networkNamed(network) if isinstance(network, str) else network
        if seeds is None:
            seeds = [f"{host}:{self.network.default_port}" for host in self.network.dns_seeds]
        self._seeds = list(seeds)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.addr_wait_s = addr_wait_s
        self.quiet_s = min(quiet_s, addr_wait_s)
        self.max_nodes = max_nodes
        self._interval = 1.0 / rate_per_s
        self._progress = progress
        self._resolver = resolver
        self._rng = rng or random.Random()
        self._records: dict[Address, NodeRecord] = {}
        self._queue: collections.deque[Address] = collections.deque()
        self._inFlight: dict[Address, _Attempt] = {}
        self._tried = 0
        self._reachable = 0
        self._resolving = 0
        self._nextDialAt = 0.0
        self._pumpCall = None
        self._started = 0.0
        self._running = False
        self._stopping = False
        self._done: defer.Deferred[Snapshot] | None = None

    # -- the crawl's life ---------------------------------------------------------

    def start(self) -> defer.Deferred[Snapshot]:
        """
        Start: resolve the seeds and dial. The result fires with the
        L{Snapshot} once every address learned was tried (or
        C{max_nodes} were), or at L{stop}.
        """
        if self._done is not None:
            raise RuntimeError("a crawler starts once")
        self._done = defer.Deferred()
        self._started = self._nextDialAt = self._reactor.seconds()
        self._running = True
        for seed in self._seeds:
            self._addSeed(seed)
        self._pump()
        return self._done

    def stop(self) -> defer.Deferred[Snapshot]:
        """
        Stop cleanly: dial no more, close the connections open (a
        connection that completed its handshake keeps what it got) and fire
        with the L{Snapshot} of what was learned, once they are closed.
        """
        if self._done is None:
            raise RuntimeError("the crawler was not started")
        if self._running and not self._stopping:
            self._stopping = True
            if self._pumpCall is not None and self._pumpCall.active():
                self._pumpCall.cancel()
            self._pumpCall = None
            for attempt in list(self._inFlight.values()):
                attempt.stop()
            self._maybeDone()
        return self._done

    def snapshot(self) -> Snapshot:
        """
        The records so far.
        """
        return Snapshot(
            self.network.name,
            self._started,
            self._reactor.seconds(),
            list(self._records.values()),
            self._stopping,
        )

    def progress(self) -> Progress:
        """
        Where the crawl stands.
        """
        return Progress(
            self._tried,
            self._reachable,
            len(self._queue) if not self._maxed() else 0,
            len(self._inFlight),
            len(self._records),
            self._reactor.seconds() - self._started,
        )

    # -- seeds ----------------------------------------------------------------

    def _addSeed(self, seed: str) -> None:
        try:
            host, port = split_host_port(seed)
        except AddressError as e:
            log.warn("Skipping seed {seed!r}: {error}", seed=seed, error=str(e))
            return
        try:
            address = Address.of(host, port)
        except AddressError:
            self._resolve(host, port)
            return
        self._learn(address, None)

    def _resolve(self, host: str, port: int) -> None:
        resolver = self._resolver or getattr(self._reactor, "nameResolver", None)
        if resolver is None:
            log.warn("Skipping seed {host}: no resolver", host=host)
            return
        receiver = _Resolution()
        self._resolving += 1
        resolver.resolveHostName(receiver, host, port)
        receiver.done.addCallback(self._resolved, host, port)

    def _resolved(self, addresses: list, host: str, port: int) -> None:
        self._resolving -= 1
        learned = 0
        for resolved in addresses:
            try:
                address = Address.of(resolved.host, port)
            except AddressError:
                continue
            learned += self._learn(address, None)
        if not addresses:
            log.warn("Skipping seed {host}: it does not resolve", host=host)
        else:
            log.info(
                "Seed {host}: {count} addresses", host=host, count=len(addresses)
            )
        if self._running:
            self._pump()

    # -- addresses --------------------------------------------------------------

    def _learn(self, address: Address, source: Address | None) -> bool:
        """
        Record C{address} if new, and queue it if it is to be dialed.

        @return: whether it was new.
        """
        if address in self._records:
            return False
        network = address_network(address)
        self._records[address] = NodeRecord(
            address, network, self._reactor.seconds(), source
        )
        if self._dialable(address, source):
            self._queue.append(address)
        return True

    @staticmethod
    def _dialable(address: Address, source: Address | None) -> bool:
        if not is_reachable(address) or not is_routable(address):
            return False
        if source is not None and is_local_range(address) and not is_local_range(source):
            return False
        return True

    def learned(self, source: Address, entries: Iterable[AddrEntry]) -> None:
        """
        The peer at C{source} told of these addresses.
        """
        for entry in entries:
            self._learn(entry.address, source)
        self._pump()

    # -- dialing ------------------------------------------------------------------

    def _maxed(self) -> bool:
        return self.max_nodes is not None and self._tried >= self.max_nodes

    def _pump(self) -> None:
        """
        Dial what the concurrency, the rate and C{max_nodes} allow.
        """
        if not self._running or self._stopping or self._pumpCall is not None:
            return
        while self._queue and len(self._inFlight) < self.concurrency and not self._maxed():
            now = self._reactor.seconds()
            if now < self._nextDialAt:
                self._pumpCall = self._reactor.callLater(self._nextDialAt - now, self._paced)
                return
            # (Up to a second's worth of dials may catch up at once.)
            self._nextDialAt = max(self._nextDialAt, now - 1.0) + self._interval
            self._dial(self._queue.popleft())
        self._maybeDone()

    def _paced(self) -> None:
        self._pumpCall = None
        self._pump()

    def _dial(self, address: Address) -> None:
        record = self._records[address]
        record.tried = True
        record.time = self._reactor.seconds()
        self._tried += 1
        attempt = _Attempt(self, record)
        self._inFlight[address] = attempt
        log.debug("Crawling {address}", address=address)
        attempt.connector = self._reactor.connectTCP(
            address.host, address.port, attempt, timeout=self.timeout_s
        )

    def attemptEnded(self, record: NodeRecord) -> None:
        """
        The attempt to C{record}'s address is over.
        """
        if self._inFlight.pop(record.address, None) is None:
            return
        if record.reachable:
            self._reachable += 1
        log.debug(
            "{address}: {outcome}",
            address=record.address,
            outcome=record.error or f"{record.user_agent} ({record.addresses} addresses)",
        )
        if self._progress is not None:
            self._progress(self.progress())
        self._pump()
        self._maybeDone()

    def _maybeDone(self) -> None:
        if not self._running or self._inFlight or (self._resolving and not self._stopping):
            return
        if not self._stopping and self._queue and not self._maxed():
            return
        self._running = False
        if self._pumpCall is not None and self._pumpCall.active():
            self._pumpCall.cancel()
        self._pumpCall = None
        assert self._done is not None
        self._done.callback(self.snapshot())

    # -- what connections need ------------------------------------------------

    def nonce(self) -> int:
        return self._rng.getrandbits(64)

    @property
    def clock(self):
        return self._reactor


def crawl(
    reactor,
    network: Network | str,
    seeds: Iterable[str] | None = None,
    concurrency: int = CRAWL_CONCURRENCY,
    timeout_s: float = CRAWL_TIMEOUT_S,
    max_nodes: int | None = None,
    rate_per_s: float = CRAWL_RATE_PER_S,
    progress: Callable[[Progress], None] | None = None,
    **options,
) -> defer.Deferred[Snapshot]:
    """
    Crawl C{network} (see L{Crawler} for the parameters).

    @return: a Deferred firing with the L{Snapshot}.
    """
    return Crawler(
        reactor,
        network,
        seeds,
        concurrency=concurrency,
        timeout_s=timeout_s,
        max_nodes=max_nodes,
        rate_per_s=rate_per_s,
        progress=progress,
        **options,
    ).start()


@implementer(IResolutionReceiver)
class _Resolution:
    """
    Collects the addresses a name resolves to.
    """

    def __init__(self) -> None:
        self.addresses: list = []
        self.done: defer.Deferred[list] = defer.Deferred()

    def resolutionBegan(self, resolution) -> None:
        pass

    def addressResolved(self, address) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


class _Attempt(ClientFactory):
    """
    One dial: its connector, and the protocol once connected.
    """

    noisy = False

    def __init__(self, crawler: Crawler, record: NodeRecord) -> None:
        self.crawler = crawler
        self.record = record
        self.connector = None
        self.protocol: _CrawlProtocol | None = None
        self.dialedAt = crawler.clock.seconds()
        self._stopped = False

    def buildProtocol(self, addr) -> _CrawlProtocol:
        self.protocol = _CrawlProtocol(self)
        return self.protocol

    def clientConnectionFailed(self, connector, reason: Failure) -> None:
        if self.record.error is None:
            self.record.error = "stopped" if self._stopped else _describe(reason)
        self.crawler.attemptEnded(self.record)

    def stop(self) -> None:
        self._stopped = True
        if self.protocol is not None:
            self.protocol.stop()
        elif self.connector is not None:
            self.connector.stopConnecting()


def _describe(reason: Failure) -> str:
    if reason.check(netError.ConnectionRefusedError):
        return "connection refused"
    if reason.check(netError.TimeoutError):
        return "connect timeout"
    return reason.getErrorMessage() or reason.type.__name__


class _CrawlProtocol(Protocol):
    """
    The crawler's side of one connection (see the module's docstring).
    Messages are dispatched to C{msg_COMMAND} methods; others are ignored.
    """

    def __init__(self, attempt: _Attempt) -> None:
        self.attempt = attempt
        self.crawler = attempt.crawler
        self.record = attempt.record
        self._clock = attempt.crawler.clock
        self._magic = self.crawler.network.magic
        self._buffer = bytearray()
        self._gotVersion = False
        self._gotVerack = False
        self._answered = False
        self._ponged = False
        self._pingNonce: int | None = None
        self._pingAt = 0.0
        self._getaddrAt = 0.0
        self._heard = False
        self._connectedAt = 0.0
        self._learned: set[Address] = set()
        self._timer = None
        self._closing = False

    # -- the connection ----------------------------------------------------------

    def connectionMade(self) -> None:
        now = self._clock.seconds()
        self._connectedAt = now
        self.record.connect_s = now - self.attempt.dialedAt
        address = self.record.address
        self._send(
            "version",
            codec.encodeVersion(
                nonce=self.crawler.nonce(),
                timestamp=int(now),
                addr_recv=address,
                services=codec.NODE_NONE,
                user_agent=USER_AGENT,
                start_height=0,
                relay=False,
            ),
        )
        self._timer = self._clock.callLater(self.crawler.timeout_s, self._timedOut)

    def _timedOut(self) -> None:
        self._timer = None
        if not self._gotVersion:
            self._end("handshake timeout (no version)")
        elif not self._gotVerack:
            self._end("handshake timeout (no verack)")
        else:
            # The answer did not come in time: what we have is the result.
            self._end(None)

    def _send(self, command: str, payload: bytes = b"") -> None:
        self.transport.write(codec.frame(self._magic, command, payload))

    def _end(self, error: str | None) -> None:
        """
        Close, with C{error} on the record unless it has one.
        """
        if self._closing:
            return
        self._closing = True
        if error is not None and self.record.error is None:
            self.record.error = error
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.transport.abortConnection()

    def stop(self) -> None:
        self._end(None if self._gotVerack else "stopped")

    def connectionLost(self, reason: Failure) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._closing and self.record.error is None:
            if not self._gotVersion:
                self.record.error = "closed before its version"
            elif not self._gotVerack:
                self.record.error = "closed before its verack"
        self._closing = True
        self.crawler.attemptEnded(self.record)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= HEADER_SIZE and not self._closing:
            try:
                command, length, digest = codec.parseHeader(buffer, self._magic, offset)
            except BadHeader as e:
                self._end(str(e))
                return
            end = offset + HEADER_SIZE + length
            if end > len(buffer):
                break
            payload = bytes(buffer[offset + HEADER_SIZE : end])
            offset = end
            if codec.checksum(payload) != digest:
                continue
            self._dispatch(command, payload)
        del buffer[:offset]

    def _dispatch(self, command: str, payload: bytes) -> None:
        if not self._gotVersion and command != "version":
            return
        if self._gotVersion and not self._gotVerack and command not in codec.BEFORE_VERACK:
            return
        method = getattr(self, "msg_" + command, None)
        if method is None:
            return
        try:
            method(payload)
        except MalformedPayload as e:
            if command == "version":
                self._end(f"malformed version: {e}")
            else:
                log.debug(
                    "{address}: ignoring a malformed {command}: {error}",
                    address=self.record.address,
                    command=command,
                    error=str(e),
                )

    # -- messages --------------------------------------------------------------

    def msg_version(self, payload: bytes) -> None:
        if self._gotVersion:
            return
        version = codec.parseVersion(payload)
        self._gotVersion = True
        record = self.record
        record.version = version.version
        record.services = version.services
        record.user_agent = codec.sanitize(version.user_agent)  # as Core keeps it
        record.start_height = version.start_height
        record.relay = version.relay
        if version.version >= WTXID_RELAY_VERSION:
            self._send("wtxidrelay")
            self._send("sendaddrv2")
        self._send("verack")

    def msg_verack(self, payload: bytes) -> None:
        if self._gotVerack:
            return
        self._gotVerack = True
        now = self._clock.seconds()
        self.record.handshake_s = now - self._connectedAt
        self.record.reachable = True
        if self.record.version > BIP0031_VERSION:
            self._pingNonce = self.crawler.nonce()
            self._pingAt = now
            self._send("ping", codec.encodeNonce(self._pingNonce))
        else:
            self._ponged = True
        self._send("getaddr")
        self._getaddrAt = now
        self._heard = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(self.crawler.quiet_s, self._timedOut)

    def msg_ping(self, payload: bytes) -> None:
        nonce = codec.parseNonce(payload, "ping")
        if nonce is not None:
            self._send("pong", codec.encodeNonce(nonce))

    def msg_pong(self, payload: bytes) -> None:
        if self._ponged or codec.parseNonce(payload, "pong") != self._pingNonce:
            return
        self._ponged = True
        self.record.ping_s = self._clock.seconds() - self._pingAt
        self._maybeFinished()

    def msg_addr(self, payload: bytes) -> None:
        self._addresses(codec.parseAddr(payload)[0])

    def msg_addrv2(self, payload: bytes) -> None:
        self._addresses(codec.parseAddrV2(payload)[0])

    def _addresses(self, entries: list[AddrEntry]) -> None:
        own = self.record.address
        if len(entries) > 1 or (len(entries) == 1 and entries[0].address != own):
            self._answered = True
        elif not self._heard and self._timer is not None and self._timer.active():
            # It spoke (its announcement of itself): its answer may come
            # on its addr timer, up to addr_wait_s after the getaddr.
            self._timer.reset(
                max(self._getaddrAt + self.crawler.addr_wait_s - self._clock.seconds(), 0)
            )
        self._heard = True
        learned = self._learned
        fresh = [e for e in entries if e.address not in learned]
        learned.update(e.address for e in fresh)
        self.record.addresses = len(learned)
        self.crawler.learned(own, fresh)
        self._maybeFinished()

    def _maybeFinished(self) -> None:
        if self._answered and self._ponged:
            self._end(None)


__all__ = ["Crawler", "FIELDS", "NodeRecord", "Progress", "Snapshot", "crawl", "outputFormat"]
