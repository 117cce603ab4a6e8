"""
Gossip: a message flooded through the whole network, each node seeing it once.

This is a bitp2p extension on top of the wire protocol, made only of message
types the protocol leaves to applications (a node that does not know them
ignores them):

  - A gossiped message is an application message with one more field,
    C{"gossip": {"hops": N}}: the number of links it may still travel
    (1 to 255; 1: to the receiver and no further).
  - Its id is the SHA-256 (hex) of its canonical JSON without that field
    (keys sorted, no spaces, UTF-8, as Python's C{json.dumps(...,
    sort_keys=True, separators=(",", ":"), ensure_ascii=False)}). Ids are
    worked out by each receiver, never taken from the sender, so that a
    peer cannot claim another message's id to suppress it.
  - A node that receives a message it has not seen validates it (the
    application's validator), hands it to the application's handler, and,
    when C{hops} is over 1, forwards it with C{hops - 1} to its other
    established peers. One it has seen (a bounded cache of ids, each kept
    C{gossip_seen_s}) is dropped. So each node receives a message at most
    once per neighbour, and handles it once.
  - A message whose encoding is over C{gossip_push_max_bytes} is announced
    instead of pushed, like Bitcoin's C{inv}/C{getdata}:
    C{{"type": "inv", "items": [{"type": T, "id": ID}, ...]}}; a node that
    has not seen an id, and handles type C{T}, asks the first announcer with
    C{{"type": "getdata", "ids": [ID, ...]}}, which answers with the message
    (or C{{"type": "notfound", "ids": [...]}}). If no answer comes within
    C{GETDATA_TIMEOUT_S}, the next announcer is asked: each node downloads a
    payload once. A node serves only what it announced to that peer, once.
  - An C{inv}, C{getdata} or C{notfound} of more than C{MAX_INV_ITEMS}
    entries, or with malformed entries, and a malformed C{gossip} field, are
    protocol violations.

The node (L{bitp2p.node.Node}) owns one L{Gossip} and routes the three
control types and every gossiped application message to it.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
from typing import Iterable, Mapping, Protocol

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from bitp2p import codec
from bitp2p.codec import ProtocolViolation
from bitp2p.constants import (  # noqa: F401 (the limits are read from here too)
    GETDATA_TIMEOUT_S,
    GOSSIP_BURST_S,
    GOSSIP_HOPS,
    GOSSIP_PUSH_MAX_BYTES,
    GOSSIP_RATE_PER_S,
    GOSSIP_SEEN_MAX,
    GOSSIP_SEEN_S,
    GOSSIP_STORE_MAX_BYTES,
    MAX_ANNOUNCED_PER_PEER,
    MAX_ANNOUNCERS,
    MAX_IN_FLIGHT_PER_PEER,
    MAX_INV_ITEMS,
)
from bitp2p.peer import Peer, refill

__all__ = [
    "CONTROL_TYPES",
    "GOSSIP_FIELD",
    "Gossip",
    "GossipHost",
    "GossipSettings",
    "SeenCache",
    "message_id",
]

GOSSIP_FIELD = "gossip"
CONTROL_TYPES = frozenset({"inv", "getdata", "notfound"})
MAX_HOPS = 255
STORE_MAX_BYTES = GOSSIP_STORE_MAX_BYTES

log = Logger()

_ID = re.compile(r"[0-9a-f]{64}\Z")
_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def message_id(message: Mapping) -> str:
    """
    The gossip id of a message: SHA-256 of its canonical JSON, without the
    C{gossip} field.
    """
    body = {k: v for k, v in message.items() if k != GOSSIP_FIELD}
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


@attrs.frozen
class GossipSettings:
    """
    @ivar hops: links a message of ours may travel, and the most a
        received one may still travel (larger counts are lowered to it).
    @ivar seen_s: how long an id is remembered (and an announced payload
        kept to serve).
    @ivar seen_max: most ids remembered.
    @ivar push_max_bytes: messages whose encoding is longer are announced
        (C{inv}) rather than pushed.
    @ivar rate_per_s: gossiped messages and announced ids taken from one
        peer per second, on average (a token bucket holding 10 seconds'
        worth); the rest are dropped, not counted as violations.
    """

    hops: int = GOSSIP_HOPS
    seen_s: float = GOSSIP_SEEN_S
    seen_max: int = GOSSIP_SEEN_MAX
    push_max_bytes: int = GOSSIP_PUSH_MAX_BYTES
    rate_per_s: float = GOSSIP_RATE_PER_S


class GossipHost(Protocol):
    """
    What L{Gossip} needs of its node.
    """

    def peers(self) -> list[Peer]:
        """
        The established peers.
        """

    def accept(self, peer: Peer, message: dict) -> bool:
        """
        Validate a message and hand it to the application; C{False} when it
        was invalid (the peer has then been closed for a violation).
        """

    def handles(self, message_type: str) -> bool:
        """
        Whether the application registered C{message_type}.
        """


class SeenCache:
    """
    Ids seen recently: at most C{max_entries}, each kept C{expiry_s}.

    Ids are added in time order, so the oldest is always first: pruning is
    popping from the front.
    """

    def __init__(self, clock: IReactorTime, expiry_s: float, max_entries: int) -> None:
        self._clock = clock
        self._expiry_s = expiry_s
        self._max = max_entries
        self._expires: collections.OrderedDict[str, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._expires)

    def __contains__(self, key: str) -> bool:
        expires = self._expires.get(key)
        return expires is not None and expires > self._clock.seconds()

    def add(self, key: str) -> None:
        now = self._clock.seconds()
        self._expires[key] = now + self._expiry_s
        self._expires.move_to_end(key)
        expires = self._expires
        while expires and (len(expires) > self._max or next(iter(expires.values())) <= now):
            expires.popitem(last=False)


@attrs.define
class _Request:
    peer: Peer  # asked, and not answered yet
    announcers: list[Peer]  # who else announced it, to ask next
    message_type: str
    asked: list[Peer] = attrs.Factory(list)  # asked before, in vain


class Gossip:
    """
    The gossip state of one node: seen ids, payloads it announced, and the
    payloads it is downloading.

    @ivar stats: counters: C{published}, C{received} (gossiped messages),
        C{duplicates} (of those, already seen), C{delivered} (valid new
        ones handed to the application), C{pushed} and C{announced}
        (messages sent or announced to peers), C{requested}, C{served}.
    """

    def __init__(self, host: GossipHost, clock: IReactorTime, settings: GossipSettings) -> None:
        self._host = host
        self._clock = clock
        self.settings = settings
        self.seen = SeenCache(clock, settings.seen_s, settings.seen_max)
        # Announced payloads to serve: id -> (message as sent, expiry, size).
        self._store: collections.OrderedDict[str, tuple[dict, float, int]] = (
            collections.OrderedDict()
        )
        self._storeBytes = 0
        self._announced: dict[Peer, dict[str, None]] = {}
        self._requests: dict[str, _Request] = {}
        self._inFlight: dict[Peer, int] = {}
        self._timers: set = set()
        self._buckets: dict[Peer, list[float]] = {}  # peer -> [tokens, when]
        self.stats = dict.fromkeys(
            (
                "published", "received", "duplicates", "delivered",
                "pushed", "announced", "requested", "served", "limited",
            ),
            0,
        )

    # -- from the application ---------------------------------------------------

    def publish(self, message: dict, hops: int | None = None) -> str:
        """
        Flood C{message} (without a C{gossip} field) through the network.
        Publishing a message already seen sends nothing.

        @return: its id.
        """
        hops = self.settings.hops if hops is None else hops
        if not isinstance(hops, int) or isinstance(hops, bool) or not 1 <= hops <= MAX_HOPS:
            raise ValueError(f"hops must be an integer from 1 to {MAX_HOPS}, not {hops!r}")
        mid = message_id(message)
        if mid in self.seen:
            return mid
        self.seen.add(mid)
        self.stats["published"] += 1
        self._spread(mid, message, hops, ())
        return mid

    # -- from peers --------------------------------------------------------------

    def received(self, peer: Peer, message: dict) -> None:
        """
        A gossiped application message (one with a C{gossip} field) arrived.
        """
        hops = _hops(message)
        if not self._take(peer, 1):
            return
        mid = message_id(message)
        self.stats["received"] += 1
        request = self._requests.pop(mid, None)
        if request is not None:
            self._answered(request.peer)
        if mid in self.seen:
            self.stats["duplicates"] += 1
            return
        self.seen.add(mid)
        body = {k: v for k, v in message.items() if k != GOSSIP_FIELD}
        if not self._host.accept(peer, body):
            return
        self.stats["delivered"] += 1
        hops = min(hops, self.settings.hops) - 1
        if hops >= 1:
            skip = (peer, *request.announcers, *request.asked) if request is not None else (peer,)
            self._spread(mid, body, hops, skip)

    def inv(self, peer: Peer, message: dict) -> None:
        items = _items(message)
        if not self._take(peer, len(items)):
            return
        wanted = []
        inFlight = self._inFlight.get(peer, 0)
        for message_type, mid in items:
            if mid in self.seen:
                continue
            request = self._requests.get(mid)
            if request is not None:
                if peer is not request.peer and peer not in request.announcers:
                    if len(request.announcers) < MAX_ANNOUNCERS:
                        request.announcers.append(peer)
                continue
            if inFlight >= MAX_IN_FLIGHT_PER_PEER or not self._host.handles(message_type):
                continue
            self._requests[mid] = _Request(peer, [], message_type)
            inFlight += 1
            wanted.append(mid)
        if wanted:
            self._inFlight[peer] = inFlight
            self._ask(peer, wanted)

    def getdata(self, peer: Peer, message: dict) -> None:
        announced = self._announced.get(peer, {})
        now = self._clock.seconds()
        missing = []
        for mid in _ids(message):
            entry = self._store.get(mid)
            # Served once, and only if announced to this peer: a peer cannot
            # make us send a payload over and over.
            if mid in announced and entry is not None and entry[1] > now:
                del announced[mid]
                self.stats["served"] += 1
                peer.send(entry[0])
            else:
                missing.append(mid)
        if missing:
            peer.send({"type": "notfound", "ids": missing})

    def notfound(self, peer: Peer, message: dict) -> None:
        for mid in _ids(message):
            request = self._requests.get(mid)
            if request is not None and request.peer is peer:
                self._answered(peer)
                self._next(mid, request)

    def peerGone(self, peer: Peer) -> None:
        """
        Forget what concerned C{peer}; ask someone else for what it owed us.
        """
        if not (self._buckets or self._announced or self._requests):
            return  # no gossip at all (every connection closes through here)
        self._announced.pop(peer, None)
        self._inFlight.pop(peer, None)
        self._buckets.pop(peer, None)
        for mid, request in list(self._requests.items()):
            if peer in request.announcers:
                request.announcers.remove(peer)
            if request.peer is peer:
                self._next(mid, request)

    def stop(self) -> None:
        """
        Cancel the download timers (the node is stopping).
        """
        timers, self._timers = self._timers, set()
        for timer in timers:
            if timer.active():
                timer.cancel()
        self._requests.clear()
        self._inFlight.clear()

    # -- inside -------------------------------------------------------------------

    def _spread(self, mid: str, body: dict, hops: int, skip: Iterable[Peer]) -> None:
        out = dict(body)
        out[GOSSIP_FIELD] = {"hops": hops}
        targets = [p for p in self._host.peers() if p not in skip]
        if not targets:
            return
        data = codec.encode(out)
        if len(data) <= self.settings.push_max_bytes:
            frames: dict = {}  # encoded once by the wire, for every peer
            for peer in targets:
                peer.send(out, frames)
            self.stats["pushed"] += len(targets)
            return
        self._keep(mid, out, len(data))
        inv = {"type": "inv", "items": [{"type": body["type"], "id": mid}]}
        frames: dict = {}
        for peer in targets:
            announced = self._announced.setdefault(peer, {})
            announced[mid] = None
            if len(announced) > MAX_ANNOUNCED_PER_PEER:
                del announced[next(iter(announced))]
            peer.send(inv, frames)
        self.stats["announced"] += len(targets)

    def _take(self, peer: Peer, count: int) -> bool:
        """
        Take C{count} tokens from C{peer}'s bucket; C{False} (and the
        message dropped) when there are not that many.
        """
        now = self._clock.seconds()
        rate = self.settings.rate_per_s
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = [rate * GOSSIP_BURST_S, now]
        tokens = refill(bucket[0], now - bucket[1], rate, rate * GOSSIP_BURST_S)
        bucket[1] = now
        if tokens < count:
            bucket[0] = tokens
            self.stats["limited"] += 1
            if self.stats["limited"] == 1 or self.stats["limited"] % 1000 == 0:
                log.info(
                    "Dropping gossip from {peer}: over {rate:g} messages a second"
                    " ({count} dropped in all)",
                    peer=peer,
                    rate=rate,
                    count=self.stats["limited"],
                )
            return False
        bucket[0] = tokens - count
        return True

    def _keep(self, mid: str, message: dict, size: int) -> None:
        now = self._clock.seconds()
        store = self._store
        store[mid] = (message, now + self.settings.seen_s, size)
        self._storeBytes += size
        while store:
            _, (_, expires, oldest) = next(iter(store.items()))
            if self._storeBytes <= STORE_MAX_BYTES and expires > now:
                break
            store.popitem(last=False)
            self._storeBytes -= oldest

    def _ask(self, peer: Peer, ids: list[str]) -> None:
        self.stats["requested"] += len(ids)
        peer.send({"type": "getdata", "ids": ids})
        timer: list = []
        timer.append(self._clock.callLater(GETDATA_TIMEOUT_S, self._timedOut, peer, ids, timer))
        self._timers.add(timer[0])

    def _timedOut(self, peer: Peer, ids: list[str], timer: list) -> None:
        self._timers.discard(timer[0])
        for mid in ids:
            request = self._requests.get(mid)
            if request is not None and request.peer is peer:
                self._answered(peer)
                self._next(mid, request)

    def _answered(self, peer: Peer) -> None:
        left = self._inFlight.get(peer, 0) - 1
        if left > 0:
            self._inFlight[peer] = left
        else:
            self._inFlight.pop(peer, None)

    def _next(self, mid: str, request: _Request) -> None:
        """
        Ask the next announcer of C{mid} that is still connected, or give up.
        """
        request.asked.append(request.peer)
        while request.announcers:
            peer = request.announcers.pop(0)
            if peer.established and self._inFlight.get(peer, 0) < MAX_IN_FLIGHT_PER_PEER:
                request.peer = peer
                self._inFlight[peer] = self._inFlight.get(peer, 0) + 1
                self._ask(peer, [mid])
                return
        del self._requests[mid]


def _hops(message: dict) -> int:
    envelope = message[GOSSIP_FIELD]
    hops = envelope.get("hops") if isinstance(envelope, dict) else None
    if not codec._isInt(hops) or not 1 <= hops <= MAX_HOPS:
        raise ProtocolViolation(
            f"{message['type']!r} message: gossip must be an object with hops from 1 to {MAX_HOPS}"
        )
    return hops


def _list(message: dict, field: str) -> list:
    value = message.get(field)
    if not isinstance(value, list):
        raise ProtocolViolation(f"{message['type']!r} message: {field} must be a list")
    if len(value) > MAX_INV_ITEMS:
        raise ProtocolViolation(
            f"{message['type']!r} message: {len(value)} entries, more than {MAX_INV_ITEMS}"
        )
    return value


def _checkId(kind: str, mid: object) -> str:
    if not isinstance(mid, str) or not _ID.match(mid):
        raise ProtocolViolation(f"{kind!r} message: ids are 64 lowercase hex digits")
    return mid


def _ids(message: dict) -> list[str]:
    kind = message["type"]
    return [_checkId(kind, mid) for mid in _list(message, "ids")]


def _items(message: dict) -> list[tuple[str, str]]:
    items = []
    for item in _list(message, "items"):
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ProtocolViolation("'inv' message: each item needs a type and an id")
        items.append((kind, _checkId("inv", item.get("id"))))
    return items

