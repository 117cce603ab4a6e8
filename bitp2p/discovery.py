"""
Peer discovery: everything C{getaddr} and C{addr} mean, in one place (the
address half of Bitcoin Core's C{PeerManagerImpl}).

L{AddressRelay} owns:

  - the start of discovery on each new connection (but a feeler's, which
    asks and says nothing: protocol 1.1): the dialer asks
    C{getaddr} (and makes room in the peer's token bucket for the whole
    answer), and each side tells the other where it listens;
  - the answer to a peer's C{getaddr} (once per connection, and only on
    connections the peer opened), drawn from the
    address manager;
  - a received C{addr}: which one is the answer to our C{getaddr}, the
    per-peer token bucket (C{addr_rate_per_s}, C{addr_bucket_tokens}), what
    is stored (and with what time) and what is dropped, what is relayed;
  - relay: each fresh address of a small unsolicited C{addr} goes to
    C{RELAY_FANOUT} peers chosen by a keyed hash, and, when the address is
    new to us, to every full outbound peer too (at most
    C{NOVEL_FLOOD_RATE_PER_S} such floods a second); never to a peer that
    knows it (the per-peer known-address filter);
  - self-advertisement (at the handshake and every C{advertise_interval_s});
  - the bootstrap seeds: added when the address manager is empty, host
    names resolved to all their addresses (by the injected
    C{IHostnameResolver}, else the reactor's C{nameResolver}; one
    resolution of a name in flight at a time; our own addresses skipped),
    and the fallback to them, names resolved again, while the node is
    short of outbound peers (fewer than C{SEED_ENOUGH_OUTBOUND}):
    C{seed_fallback_s} after start, then backing off up to
    C{seed_retry_max_s}, stopping once it has its peers and starting again
    when an outbound peer goes.

Its per-peer state (L{_AddrState}) lives here, keyed by peer, from the
handshake (or the first address exchanged) to the close. It reaches the
rest of the node through the connection manager's interface,
L{IConnections<bitp2p.interfaces.IConnections>} (the peers, our own
addresses, the listening address), and callbacks; it knows nothing of
sockets, slots or wire formats.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import TYPE_CHECKING, Callable, Iterable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from bitp2p import codec
from bitp2p.address import Address, AddressError, hostAddress, unreachable_reason
from bitp2p.constants import (
    ADDR_FUTURE_SLACK_S,
    ADDR_INITIAL_TOKENS,
    ADDR_TIME_PENALTY_S,
    ADDR_UNKNOWN_AGE_S,
    GETADDR_MAX_PCT,
    GETADDR_MAX_REPLY,
    GETADDR_MIN_COUNT,
    KNOWN_ADDRESSES_PER_PEER,
    LOCAL_HOSTS_REMEMBERED,
    NOVEL_FLOOD_BURST,
    NOVEL_FLOOD_RATE_PER_S,
    RELAY_FANOUT,
    RELAY_FRESH_S,
    RELAY_MAX_ENTRIES,
    SEED_ENOUGH_OUTBOUND,
)
from bitp2p.peer import ConnectionType, Direction, Peer, refill

if TYPE_CHECKING:
    from bitp2p.banman import BanMan
    from bitp2p.config import NodeConfig
    from bitp2p.interfaces import IAddressManager, IConnections

log = Logger()

# Relay ranks: (address-and-day hash XOR peer hash) times an odd constant
# (the 64-bit golden ratio), modulo 2**64.
_MIX = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1

Entries = list[tuple[Address, "int | None"]]


class _AddrState:
    """
    What the address relay keeps of one peer.

    @ivar tokens: the token bucket: addresses that may still be taken;
        C{ADDR_INITIAL_TOKENS} (1, the peer's own announcement) on a new
        connection, as Bitcoin Core.
    @ivar tokens_at: when C{tokens} was last refilled (at first, when the
        connection was made: the bucket fills from then on).
    @ivar known: addresses the peer sent us or was sent (oldest first), made
        on first use.
    @ivar answered: whether its C{getaddr} was answered (once per
        connection).
    @ivar awaiting: whether we wait for the answer to our C{getaddr}.
    @ivar novel_at: when it last told us of an address new to us (0: never);
        it protects the peer from eviction.
    """

    __slots__ = ("tokens", "tokens_at", "known", "answered", "awaiting", "novel_at")

    def __init__(self, since: float) -> None:
        self.tokens = float(ADDR_INITIAL_TOKENS)
        self.tokens_at = since
        self.known: dict[Address, None] | None = None
        self.answered = False
        self.awaiting = False
        self.novel_at = 0.0


class AddressRelay:
    """
    The meaning of C{getaddr} and C{addr}, the relay of addresses, our own
    advertisement, and the seeds.

    @param book: the current address manager.
    @param bans: the current L{BanMan}.
    @param relayKey: the secret that keys the choice of relay targets.
    @param onNewAddresses: C{(learned)}: addresses new to the book were
        stored (the store may save a grown book); C{learned} is false when
        they came as relayed gossip (a small unsolicited C{addr}), true
        when they came as an answer or a table's worth: only the second
        says that asking peers still teaches the node something.
    @param onAnswer: C{(peer)}: the answer to our C{getaddr} to C{peer}
        arrived (a short-lived connection's job is then done).
    @param maintain: run the connection manager's round (once seeds are
        known).
    @param running: whether the node runs.
    @param resolver: the C{IHostnameResolver} for seed names; L{None}: the
        reactor's C{nameResolver}.
    """

    def __init__(
        self,
        config: NodeConfig,
        reactor,
        connections: IConnections,
        book: Callable[[], IAddressManager],
        bans: Callable[[], BanMan],
        relayKey: bytes,
        onNewAddresses: Callable[[bool], None],
        onAnswer: Callable[[Peer], None],
        maintain: Callable[[], None],
        running: Callable[[], bool],
        resolver=None,
    ) -> None:
        self._config = config
        self._reactor = reactor
        self._connections = connections
        self._book = book
        self._bans = bans
        self._relayKey = relayKey
        self._onNewAddresses = onNewAddresses
        self._onAnswer = onAnswer
        self._maintain = maintain
        self._running = running
        self._states: dict[Peer, _AddrState] = {}
        self._peerKeys: dict[Peer, int] = {}
        self._floodTokens = float(NOVEL_FLOOD_BURST)
        self._floodAt = reactor.seconds()
        self._resolver = resolver
        self._seedTimer = None
        self._started = False
        self._seedDelay = config.seed_fallback_s
        # Names whose resolution is in flight, and names that failed last
        # time (logged once until they resolve again).
        self._resolving: set[tuple[str, int]] = set()
        self._seedFailing: set[str] = set()
        # Our own address as peers reach it, by local host and port.
        self._ownAddresses: dict[tuple[str | None, int], Address] = {}

    # -- start and stop ---------------------------------------------------------

    def start(self) -> None:
        """
        Bootstrap: the seeds now if the address manager is empty; in any
        case, the fallback to them C{seed_fallback_s} later if the node is
        still short of peers. Nothing without seeds, nor with C{--connect},
        which dials only what it names.
        """
        if self._config.connect or not self._config.seed_list():
            return
        self._started = True
        if len(self._book()) == 0:
            self.addSeeds()
        self._scheduleFallback(restart=True)

    def stop(self) -> None:
        self._started = False
        if self._seedTimer is not None and self._seedTimer.active():
            self._seedTimer.cancel()
        self._seedTimer = None

    # -- peers come and go ------------------------------------------------------

    def peerEstablished(self, peer: Peer) -> None:
        """
        Discovery starts at once: the dialer asks for addresses, and each
        side tells the other where it listens.
        """
        if peer.kind is ConnectionType.FEELER:
            return  # protocol 1.1: a feeler asks nothing and says nothing
        if peer.direction is Direction.OUTBOUND:
            # (An inbound peer's state is made when it first sends or is
            # sent addresses: most of a big node's inbound peers never are.)
            state = self._state(peer)
            state.awaiting = True
            # Room for the whole answer, as Bitcoin Core does after its
            # getaddr; the rate limit still bounds everything else.
            state.tokens += GETADDR_MAX_REPLY
            peer.send(codec.getaddr())
        self.advertise(peer)

    def peerClosed(self, peer: Peer, reason: Exception) -> None:
        self._states.pop(peer, None)
        self._peerKeys.pop(peer, None)
        # An outbound peer gone may leave the node short again: the
        # fallback, stopped once it had its peers, looks again later.
        if (
            peer.kind is ConnectionType.OUTBOUND
            and self._seedTimer is None
            and self._started
            and self._running()
        ):
            self._scheduleFallback(restart=True)

    def _state(self, peer: Peer) -> _AddrState:
        state = self._states.get(peer)
        if state is None:
            state = self._states[peer] = _AddrState(peer.connected_at)
        return state

    def lastNovelAddressAt(self, peer: Peer) -> float:
        """
        When C{peer} last told us of an address new to us (0: never).
        """
        state = self._states.get(peer)
        return state.novel_at if state is not None else 0.0

    # -- what peers send --------------------------------------------------------

    def getaddrReceived(self, peer: Peer) -> None:
        """
        Answer C{peer}'s C{getaddr}, the first of its connection only, and
        only when the peer dialed us (protocol 1.1, as Bitcoin Core does):
        our outbound peers must not read our table to fingerprint us.
        """
        if peer.direction is not Direction.INBOUND:
            log.debug("Ignoring getaddr from outbound peer {peer}", peer=peer)
            return
        state = self._state(peer)
        if state.answered:
            return
        state.answered = True
        entries = self.addressesFor(peer, GETADDR_MAX_REPLY)
        self._remember(state, (address for address, _ in entries))
        peer.send(codec.addr(entries))

    def addrReceived(self, peer: Peer, entries: Entries) -> None:
        """
        C{peer} told us of addresses: the answer to our C{getaddr} (the
        first C{addr} after it that is not just the peer advertising itself,
        which may come first) is stored; anything else is stored too, and
        its fresh entries relayed when it is small (at most
        C{RELAY_MAX_ENTRIES}). The token bucket bounds what is taken.
        """
        if peer.kind is ConnectionType.FEELER:
            return  # protocol 1.1: a feeler takes no addresses
        state = self._state(peer)
        answer = state.awaiting and not _isSelfAdvertisement(peer, entries)
        if answer:
            state.awaiting = False
        total = len(entries)
        entries = self._rateLimit(peer, state, entries)
        if entries:
            self._remember(state, (address for address, _ in entries))
            relay = not answer and total <= RELAY_MAX_ENTRIES
            self.addressesReceived(peer, entries, relay)
        if answer:
            self._onAnswer(peer)

    def _rateLimit(self, peer: Peer, state: _AddrState, entries: Entries) -> Entries:
        """
        Keep as many entries as the peer's token bucket allows. The bucket
        refills at C{addr_rate_per_s} up to C{addr_bucket_tokens}; the bonus
        given when we send C{getaddr} may take it above that.
        """
        now = self._reactor.seconds()
        state.tokens = refill(
            state.tokens,
            now - state.tokens_at,
            self._config.addr_rate_per_s,
            self._config.addr_bucket_tokens,
        )
        state.tokens_at = now
        allowed = int(state.tokens)
        if allowed < len(entries):
            log.debug(
                "Rate limit: dropped {dropped} addresses from {peer}",
                dropped=len(entries) - allowed,
                peer=peer,
            )
            entries = entries[:allowed]
        state.tokens -= len(entries)
        return entries

    def addressesReceived(self, peer: Peer, entries: Entries, relay: bool) -> None:
        """
        Store what C{peer} told us (already rate-limited), as Bitcoin Core
        does: an entry without a time, or with a time too far in the future,
        is taken as seen 5 days ago (and not relayed), except the peer's
        announcement of itself, taken as seen now; addresses that are ours,
        banned or discouraged are dropped, and so are loopback ones unless
        the peer is on loopback too. Fresh entries are relayed if C{relay}.
        """
        now = self._reactor.seconds()
        remote = hostAddress(peer.remote_address)
        from_loopback = remote is not None and remote.is_loopback
        source = peer.address or remote
        if source is None:
            return
        bans = self._bans()
        own = self._connections.ownAddresses
        book = self._book()
        accepted: list[tuple[Address, float]] = []
        fresh: list[tuple[Address, int, bool]] = []
        for address, seen in entries:
            if address in own or (address.is_loopback and not from_loopback):
                continue
            host = address.host
            if bans.is_banned(host, now) or bans.is_discouraged(host, now):
                continue
            if seen is None or seen > now + ADDR_FUTURE_SLACK_S:
                if address == peer.address:
                    seen = int(now)
                else:
                    accepted.append((address, now - ADDR_UNKNOWN_AGE_S))
                    continue
            accepted.append((address, float(seen)))
            if relay and seen >= now - RELAY_FRESH_S:
                fresh.append((address, seen, address not in book))
        if accepted and book.add(accepted, source, now, ADDR_TIME_PENALTY_S):
            self._state(peer).novel_at = now
            self._onNewAddresses(not relay)
        if fresh:
            self._relay(peer, fresh)

    def addressesFor(self, peer: Peer, count: int) -> Entries:
        """
        At most C{count} addresses to answer C{peer}'s C{getaddr} with (as
        Bitcoin Core: at most C{GETADDR_MAX_PCT} % of what we know), never
        our own.
        """
        now = self._reactor.seconds()
        own = self._connections.ownAddresses
        return [
            (info.address, int(info.last_seen) if info.last_seen else None)
            for info in self._book().get_addr(now, count, GETADDR_MAX_PCT, GETADDR_MIN_COUNT)
            if info.address not in own
        ]

    # -- the known-address filter -----------------------------------------------

    def knowsAddress(self, peer: Peer, address: Address) -> bool:
        """
        Whether C{peer} was sent C{address}, or told us of it (among the
        last C{KNOWN_ADDRESSES_PER_PEER} such addresses).
        """
        state = self._states.get(peer)
        return state is not None and state.known is not None and address in state.known

    def rememberAddresses(self, peer: Peer, addresses: Iterable[Address]) -> None:
        """
        Note that C{peer} knows these addresses: it sent them, or was sent
        them. The oldest are forgotten past C{KNOWN_ADDRESSES_PER_PEER}.
        """
        self._remember(self._state(peer), addresses)

    @staticmethod
    def _remember(state: _AddrState, addresses: Iterable[Address]) -> None:
        known = state.known
        if known is None:
            known = state.known = {}
        for address in addresses:
            known.pop(address, None)
            known[address] = None
        excess = len(known) - KNOWN_ADDRESSES_PER_PEER
        if excess > 0:
            for address in list(itertools.islice(known, excess)):
                del known[address]

    # -- relay ------------------------------------------------------------------

    def _relay(self, source: Peer, entries: list[tuple[Address, int, bool]]) -> None:
        """
        Pass fresh addresses on, as Bitcoin Core's RelayAddress does: each
        goes to the C{RELAY_FANOUT} peers (other than its source) that rank
        highest by a keyed hash of the address, the peer and the day, so
        the same address takes the same way for a day whoever sends it
        again (repeating an address does not reach more peers), and is sent
        only to those that do not know it yet (neither sent it to us nor
        were sent it by us), so re-advertisements stop at the first hop.

        Unlike Bitcoin Core, an address that was new to us also goes to
        every full outbound peer (that does not know it): every node has
        C{max_outbound} of them, all reachable nodes, so a newcomer's
        announcement floods the reachable nodes along those links until it
        meets nodes that know it, instead of dying out at a fixed fraction
        of the network. At most C{NOVEL_FLOOD_RATE_PER_S} addresses a second
        are flooded so (a token bucket); past it, a new address goes where
        any other would.

        @param entries: C{(address, time, new to us)}.
        """
        others = [p for p in self._connections.peers() if p is not source]
        if not others:
            return
        now = int(self._reactor.seconds())
        outbound: list[Peer] | None = None
        batches: dict[Peer, Entries] = {}
        for address, seen, novel in entries:
            targets = self.relayTargets(address, others, now)
            if novel and self._mayFlood():
                if outbound is None:
                    outbound = [p for p in others if p.kind is ConnectionType.OUTBOUND]
                targets = [*targets, *(p for p in outbound if p not in targets)]
            for peer in targets:
                if not self.knowsAddress(peer, address):
                    batches.setdefault(peer, []).append((address, seen))
        for peer, batch in batches.items():
            self._remember(self._state(peer), (address for address, _ in batch))
            peer.send(codec.addr(batch))

    def _mayFlood(self) -> bool:
        """
        Take a token of the node-wide bucket of new addresses flooded to
        the outbound peers, if there is one.
        """
        now = self._reactor.seconds()
        self._floodTokens = refill(
            self._floodTokens, now - self._floodAt, NOVEL_FLOOD_RATE_PER_S, NOVEL_FLOOD_BURST
        )
        self._floodAt = now
        if self._floodTokens < 1:
            return False
        self._floodTokens -= 1
        return True

    def relayTargets(
        self, address: Address, peers: list[Peer], now: int, fanout: int = RELAY_FANOUT
    ) -> list[Peer]:
        """
        The C{fanout} of C{peers} that C{address} is relayed to at C{now}
        (all of them when there are no more): the highest-ranked, so a
        smaller fanout's targets are among a larger one's.
        """
        if len(peers) <= fanout:
            return peers
        key = str(address).encode()
        offset = int.from_bytes(
            hashlib.blake2b(key, key=self._relayKey, digest_size=8).digest(), "big"
        )
        day = ((now + offset % 86400) // 86400).to_bytes(8, "big")
        base = int.from_bytes(
            hashlib.blake2b(key + b"\0" + day, key=self._relayKey, digest_size=8).digest(), "big"
        )
        # Each peer's rank mixes the address-and-day hash with the peer's
        # own keyed hash (made once per peer): one multiplication per peer
        # instead of a hash.
        keys = self._peerKeys
        peerKeys = list(map(keys.get, peers))
        if None in peerKeys:
            for index, peer in enumerate(peers):
                if peerKeys[index] is None:
                    peerKeys[index] = keys[peer] = int.from_bytes(
                        hashlib.blake2b(
                            (peer.node_id or "").encode(), key=self._relayKey, digest_size=8
                        ).digest(),
                        "big",
                    )
        ranks = [((base ^ peerKey) * _MIX) & _MASK64 for peerKey in peerKeys]
        # heapq.nlargest(fanout, peers, key=rank), which is a stable sort
        # (of equal ranks, the earlier peer first), without a Python call
        # per peer: the highest rank left, its first peer, fanout times
        # (a rank is never negative: -1 marks one taken).
        targets = []
        for _ in range(fanout):
            index = ranks.index(max(ranks))
            ranks[index] = -1
            targets.append(peers[index])
        return targets

    # -- our own address --------------------------------------------------------

    def advertisementFor(self, peer: Peer) -> Address | None:
        """
        This node's listening address as C{peer} can reach it (for a node
        listening on every interface: the local address of that
        connection), remembered as our own; L{None} when not listening.
        """
        listening = self._connections.listeningAddress
        if listening is None or not listening.port:
            return None
        host = listening.host
        if host in ("0.0.0.0", "::"):
            host = getattr(peer.local_address, "host", None)
        # One of a few (a node has few local addresses): made and
        # remembered as our own once, not at every handshake.
        key = (host, listening.port)
        own = self._ownAddresses.get(key)
        if own is None:
            try:
                own = Address.of(host, listening.port)
            except (AddressError, AttributeError):
                return None
            self._connections.addOwn(own)
            if len(self._ownAddresses) < LOCAL_HOSTS_REMEMBERED:
                self._ownAddresses[key] = own
        return own

    def advertise(self, peer: Peer) -> None:
        """
        Tell C{peer} this node's own listening address.
        """
        own = self.advertisementFor(peer)
        if own is not None:
            # Not remembered as known: we never relay our own address.
            peer.send(codec.addr([(own, int(self._reactor.seconds()))]))

    def advertiseAll(self) -> None:
        """
        Tell every established peer our address (the advertise timer's work).
        """
        for peer in self._connections.peers():
            self.advertise(peer)

    # -- seeds ------------------------------------------------------------------

    def addSeeds(self) -> None:
        """
        Put the bootstrap addresses in the address manager; host names are
        resolved to all their addresses first, except the names of overlay
        networks (C{.onion}, C{.i2p}), which the DNS must never see.
        """
        now = self._reactor.seconds()
        for host, port in self._config.seed_list():
            try:
                address = Address.of(host, port)
            except AddressError:
                unreachable = unreachable_reason(host)
                if unreachable is not None:
                    log.warn("Seed {host} not resolved: {why}", host=host, why=unreachable)
                    continue
                self._resolveSeed(host, port)
                continue
            self._addSeed(address, now)

    def _addSeed(self, address: Address, now: float) -> None:
        # A name that stands for the whole fleet stands for us too: never
        # our own address.
        if not self._isOwnSeed(address):
            self._book().add([(address, now)], address, now)

    def _isOwnSeed(self, address: Address) -> bool:
        """
        Whether a seed is this node: an address known as ours (advertised,
        or found by dialing ourselves), our listening address, or, when we
        listen on every interface, a loopback address with our port. (A
        pod's own IP behind a wildcard listener is known as ours from its
        first connection, or from the one dial that reaches itself.)
        """
        if self._connections.isOwn(address):
            return True
        listening = self._connections.listeningAddress
        if listening is None or address.port != listening.port:
            return False
        if listening.host in ("0.0.0.0", "::"):
            return address.is_loopback
        return address.host == listening.host

    def _seedFailed(self, host: str, message: str, **fields) -> None:
        # One line per failing name, not one per try.
        if host not in self._seedFailing:
            self._seedFailing.add(host)
            log.warn(message, host=host, **fields)

    def _resolveSeed(self, host: str, port: int) -> None:
        if (host, port) in self._resolving:
            return
        resolver = self._resolver
        if resolver is None:
            resolver = getattr(self._reactor, "nameResolver", None)
        if resolver is None:
            self._seedFailed(host, "Cannot resolve seed {host}: no resolver")
            return
        receiver = _Collect()
        self._resolving.add((host, port))
        try:
            resolver.resolveHostName(receiver, host, port)
        except Exception as e:
            # A resolver that fails at once leaves no question in flight.
            self._resolving.discard((host, port))
            self._seedFailed(host, "Cannot resolve seed {host}: {why}", why=e)
            return

        def done(addresses: list[Address]) -> None:
            self._resolving.discard((host, port))
            if not addresses:
                self._seedFailed(host, "Seed {host} resolved to no address")
            elif host in self._seedFailing:
                self._seedFailing.discard(host)
                log.info("Seed {host} resolves again", host=host)
            if not self._running():
                return
            now = self._reactor.seconds()
            for address in addresses:
                self._addSeed(address, now)
            self._maintain()

        receiver.done.addCallback(done)

    def shortOfPeers(self) -> bool:
        """
        Whether the node has fewer established automatic outbound peers
        than C{SEED_ENOUGH_OUTBOUND} (or than its outbound slots, if fewer):
        while it does, the seeds are worth asking again.
        """
        enough = min(SEED_ENOUGH_OUTBOUND, self._config.outbound_slots)
        outbound = sum(
            1 for peer in self._connections.peers() if peer.kind is ConnectionType.OUTBOUND
        )
        return outbound < enough

    def _scheduleFallback(self, restart: bool = False) -> None:
        if restart:
            self._seedDelay = self._config.seed_fallback_s
        self._seedTimer = self._reactor.callLater(self._seedDelay, self._seedFallback)

    def _seedFallback(self) -> None:
        self._seedTimer = None
        if not self._started or not self._running() or not self.shortOfPeers():
            return
        if self._seedDelay == self._config.seed_fallback_s:
            log.info("Short of peers: falling back to the seeds")
        self.addSeeds()
        self._maintain()
        bound = max(self._config.seed_retry_max_s, self._config.seed_fallback_s)
        self._seedDelay = min(self._seedDelay * 2, bound)
        self._scheduleFallback()


def _isSelfAdvertisement(peer: Peer, entries: Entries) -> bool:
    return len(entries) == 1 and entries[0][0] == peer.address


class _Collect:
    """
    An C{IResolutionReceiver} that gathers every address of a host name.
    """

    def __init__(self) -> None:
        self.addresses: list[Address] = []
        self.done: Deferred[list[Address]] = Deferred()

    def resolutionBegan(self, resolution) -> None:
        pass

    def addressResolved(self, address) -> None:
        try:
            found = Address.of(address.host, address.port)
        except AddressError:
            return
        if found not in self.addresses:
            self.addresses.append(found)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


__all__ = ["AddressRelay"]
