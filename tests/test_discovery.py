"""
Discovery as a peer sees it: a L{Peer} hands C{getaddr} and C{addr} to the
address relay (L{bitp2p.discovery.AddressRelay}), which answers once per
connection, tells the answer to our C{getaddr} from unsolicited messages,
rate-limits each peer with a token bucket, decides what may be relayed, and
remembers what each peer knows. The relay is real; its address-manager side
is recorded (L{tests.helpers.RecordingRelay}). No sockets, no sleeping.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address
from bitp2p.peer import Direction, PeerSettings

from .helpers import RecordingManager, establish, makePeer, receive, sent, version


class DiscoveryTests(SynchronousTestCase):
    def test_getaddrIsAnsweredOnce(self):
        peer, wire, transport, manager, clock = establish(Direction.INBOUND)
        manager.known = [(Address.of("10.1.2.3", 5000), 7)]
        receive(wire, {"type": "getaddr"})
        self.assertEqual(
            sent(transport), [{"type": "addr", "peers": [{"addr": "10.1.2.3:5000", "time": 7}]}]
        )
        receive(wire, {"type": "getaddr"})
        self.assertEqual(sent(transport), [])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["addressesFor"])
        self.assertEqual(manager.events[0][1], 1000)

    def test_addrWithMoreThan1000EntriesIsViolation(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "addr", "peers": ["10.0.0.1:1"] * 1001})
        self.assertTrue(transport.disconnecting)
        self.assertEqual(manager.kinds(), ["violation"])

    def test_answerToGetaddrIsNotRelayedAndFitsTheBonusTokens(self):
        # Sending getaddr adds 1000 tokens to the peer's bucket (Bitcoin
        # Core), so a full answer gets through, then the limit holds again.
        peer, wire, transport, manager, clock = makePeer(Direction.OUTBOUND)
        receive(wire, version(), {"type": "verack"})
        manager.events.clear()
        peers = [f"10.0.{i // 250}.{i % 250 + 1}:5000" for i in range(1000)]
        receive(wire, {"type": "addr", "peers": peers})
        [(kind, entries, relay), answer] = manager.events
        self.assertEqual((kind, len(entries), relay, answer), ("addresses", 1000, False, ("answer",)))
        manager.events.clear()
        receive(wire, {"type": "addr", "peers": peers})
        [(kind, entries, relay)] = manager.events
        self.assertEqual(len(entries), 1)  # the 1 token a connection starts with

    def test_inboundPeerGetsNoBonus(self):
        peer, wire, transport, manager, clock = establish(Direction.INBOUND)
        peers = [f"10.0.{i // 250}.{i % 250 + 1}:5000" for i in range(1000)]
        receive(wire, {"type": "addr", "peers": peers})
        [(kind, entries, relay)] = manager.events
        self.assertEqual(len(entries), 1)

    def test_newConnectionTakesOneAddressThenTheRate(self):
        # Bitcoin Core's m_addr_token_bucket{1.0}: room for the peer's
        # announcement of itself, then 0.1 a second from the connection's
        # start.
        peer, wire, transport, manager, clock = establish(
            Direction.INBOUND, settings=PeerSettings(inactivity_timeout_s=1e6)
        )
        peers = [f"10.{i // 250}.{i % 250}.1:5000" for i in range(1000)]
        flood = {"type": "addr", "peers": peers}
        receive(wire, flood, flood)
        self.assertEqual([len(e[1]) for e in manager.events], [1])
        self.assertEqual(manager.events[0][1][0][0], Address.of("10.0.0.1", 5000))
        clock.advance(10)
        receive(wire, flood)
        clock.advance(100)
        receive(wire, flood)
        self.assertEqual([len(e[1]) for e in manager.events], [1, 1, 10])

    def test_reconnectingGivesNoFreshAllowance(self):
        # The issue-16 probe: connect, send one addr of 1000 fresh entries,
        # close, again and again. Each connection is a new bucket, of one
        # token: reconnecting buys one address, not ten.
        manager, clock = RecordingManager(), Clock()
        stored = []
        for n in range(50):
            peer, wire, transport, manager, clock = establish(
                Direction.INBOUND, manager=manager, clock=clock
            )
            fresh = [f"{1 + n}.{i // 250}.{i % 250}.1:5000" for i in range(1000)]
            receive(wire, {"type": "addr", "peers": fresh})
            stored.extend(
                address for kind, *rest in manager.events if kind == "addresses"
                for address, _ in rest[0]
            )
            manager.events.clear()
            wire.connectionLost(Failure(ConnectionDone()))
            clock.advance(0.1)
        self.assertEqual(len(stored), 50)
        self.assertEqual(len(set(stored)), 50)

    def test_smallUnsolicitedAddrIsRelayable(self):
        peer, wire, transport, manager, clock = establish()
        receive(wire, {"type": "addr", "peers": ["10.0.0.1:5000"]})  # getaddr answer
        receive(wire, {"type": "addr", "peers": ["10.0.0.2:5000", "10.0.0.3:5000"]})
        self.assertEqual([e[2] for e in manager.events if e[0] == "addresses"], [False, True])

    def test_largeUnsolicitedAddrIsNotRelayed(self):
        peer, wire, transport, manager, clock = establish(
            manager=RecordingManager(addr_rate_per_s=1000)
        )
        receive(wire, {"type": "addr", "peers": []})  # the getaddr answer
        clock.advance(100)
        manager.events.clear()
        receive(wire, {"type": "addr", "peers": [f"10.0.0.{i}:5000" for i in range(1, 12)]})
        [(kind, entries, relay)] = manager.events
        self.assertEqual(len(entries), 11)
        self.assertFalse(relay)

    def test_addressesFromOnePeerAreRateLimited(self):
        manager = RecordingManager(addr_rate_per_s=0.1, addr_bucket_tokens=1000)
        peer, wire, transport, manager, clock = establish(Direction.INBOUND, manager=manager)
        flood = {"type": "addr", "peers": [f"10.0.0.{i}:5000" for i in range(1, 11)]}
        receive(wire, flood, flood)
        self.assertEqual([len(e[1]) for e in manager.events], [1])
        clock.advance(50)  # 5 tokens
        receive(wire, flood)
        self.assertEqual([len(e[1]) for e in manager.events], [1, 5])
        self.assertFalse(transport.disconnecting)

    def test_rateLimitBucketIsCapped(self):
        peer, wire, transport, manager, clock = establish(
            Direction.INBOUND,
            settings=PeerSettings(inactivity_timeout_s=1e6),
            manager=RecordingManager(addr_rate_per_s=1, addr_bucket_tokens=20),
        )
        clock.advance(10_000)
        many = {"type": "addr", "peers": [f"10.0.{i}.1:5000" for i in range(100)]}
        receive(wire, many)
        self.assertEqual(len(manager.events[0][1]), 20)

    def test_malformedEntriesAreDroppedNotFatal(self):
        peer, wire, transport, manager, clock = establish()
        receive(
            wire,
            {"type": "addr", "peers": ["nonsense", "0.0.0.0:5000", "10.0.0.1:0", "10.0.0.9:5000"]},
        )
        self.assertFalse(transport.disconnecting)
        [(kind, entries, relay), _] = manager.events
        self.assertEqual(entries, [(Address.of("10.0.0.9", 5000), None)])


class KnownAddressTests(SynchronousTestCase):
    """
    Each peer remembers, up to a bound, the addresses it sent us or we sent
    it, so that relaying never tells a peer what it knows.
    """

    def test_addressesHeardFromThePeerAreKnown(self):
        peer, wire, transport, manager, clock = establish(
            manager=RecordingManager(addr_bucket_tokens=1000, addr_rate_per_s=1000)
        )
        clock.advance(100)
        receive(wire, {"type": "addr", "peers": ["10.1.2.3:5000"]})
        self.assertTrue(manager.relay.knowsAddress(peer, Address.of("10.1.2.3", 5000)))
        self.assertFalse(manager.relay.knowsAddress(peer, Address.of("10.1.2.4", 5000)))

    def test_addressesSentToThePeerAreKnown(self):
        peer, wire, transport, manager, clock = establish(Direction.INBOUND)
        manager.known = [(Address.of("10.0.0.1", 5000), None)]
        receive(wire, {"type": "getaddr"})
        self.assertTrue(manager.relay.knowsAddress(peer, Address.of("10.0.0.1", 5000)))

    def test_theOldestAreForgottenPastTheBound(self):
        import bitp2p.discovery

        self.patch(bitp2p.discovery, "KNOWN_ADDRESSES_PER_PEER", 3)
        peer, wire, transport, manager, clock = establish()
        addresses = [Address.of(f"10.0.0.{i}", 5000) for i in range(1, 6)]
        manager.relay.rememberAddresses(peer, addresses[:3])
        manager.relay.rememberAddresses(peer, addresses[:1])  # seen again: now the newest
        manager.relay.rememberAddresses(peer, addresses[3:])
        self.assertEqual(
            [manager.relay.knowsAddress(peer, a) for a in addresses], [True, False, False, True, True]
        )
