"""
Addresses of networks bitp2p cannot reach (onion, I2P, CJDNS: it has no
proxy) are stored but never dialed (issue 17): the outbound filler and the
feelers skip them and try another (Bitcoin Core's C{IsReachable} check in
C{ThreadOpenConnections}), and a manual connection to one fails with one
clear line, without a dial or a DNS look-up.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from bitp2p.address import Address, cjdns_host, i2p_host, onion_host
from bitp2p.errors import ConnectFailed
from bitp2p.node import NodeConfig

from .helpers import learn, makeNode
from .test_connman import Remote, dialed, tick
from .test_node import FakeResolver

NO_PROXY = "cannot reach onion addresses: bitp2p has no proxy"


def overlay(count: int) -> list[Address]:
    """
    C{count} onion, I2P and CJDNS addresses, in many groups.
    """
    found = []
    for i in range(count):
        key = bytes([i * 16 % 256, i]) + bytes(30)
        found.append(Address.of(onion_host(key), 8333))
        found.append(Address.of(i2p_host(key), 0))
        found.append(Address.of(cjdns_host(b"\xfc" + key[:15]), 8333))
    return found


def failure(d) -> Exception:
    failures = []
    d.addErrback(lambda f: failures.append(f.value))
    assert len(failures) == 1, failures
    return failures[0]


def recordDials(node) -> list[str]:
    """
    Every target the node asks its connection manager to dial (the
    connection manager itself refuses an unreachable one without a dial:
    this sees whether it was asked at all).
    """
    asked: list[str] = []
    dial = node.connman.dial

    def recording(target, kind):
        asked.append(str(target))
        return dial(target, kind)

    node.connman.dial = recording
    return asked


def reachable(count: int, first: int = 1) -> list[Address]:
    return [Address.of(f"20.{g}.0.1", 5000) for g in range(first, first + count)]


class OutboundTests(SynchronousTestCase):
    def test_onlyUnreachableAddressesMakeNoDial(self):
        """
        A node whose address manager holds only overlay addresses stores
        them, and dials none of them, round after round (feelers
        included).
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, feeler_interval_s=60)
        asked = recordDials(node)
        addresses = overlay(16)
        learn(node, *addresses)
        self.assertEqual(len(node.book), len(addresses))
        reactor.advance(3600)
        self.assertEqual(asked, [])
        self.assertEqual(reactor.tcpClients, [])
        for address in addresses:
            self.assertEqual(node.book.get(address).last_tried, 0)

    def test_reachableAddressesAmongThemAreDialed(self):
        """
        An unreachable address drawn is skipped for another: the slots fill
        with reachable ones only.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor)
        asked = recordDials(node)
        learn(node, *overlay(16), *reachable(16))
        tick(node, 3)
        self.assertEqual(len(asked), node.config.max_outbound)
        self.assertEqual(sorted(asked), sorted(str(a) for a in dialed(reactor)))
        self.assertTrue(all(a.ip is not None for a in dialed(reactor)))

    def test_feelersSkipThem(self):
        """
        Once the outbound slot is held, feelers test the "new" table: never
        an unreachable address.
        """
        reactor = MemoryReactorClock()
        node = makeNode(6001, reactor, max_outbound=1, feeler_interval_s=60)
        learn(node, Address.of("20.99.0.1", 5000))
        tick(node)
        Remote(reactor, 0).accept()
        asked = recordDials(node)
        learn(node, *overlay(16), *reachable(16))
        reactor.advance(3600)
        self.assertTrue(asked)
        feelers = [Address.of(h, p) for h, p, *_ in reactor.tcpClients[1:]]
        self.assertEqual(sorted(asked), sorted(str(a) for a in feelers))
        self.assertTrue(all(a.ip is not None for a in feelers))


class ManualTests(SynchronousTestCase):
    def test_connectFailsWithOneLine(self):
        reactor = MemoryReactorClock()
        reactor.nameResolver = FakeResolver({})
        node = makeNode(6001, reactor)
        onion = str(overlay(1)[0])
        for call in (
            lambda: node.connect(onion),
            lambda: node.connect(onion.rpartition(":")[0], 8333),
            lambda: node.connect("tcp:" + onion),
            lambda: node.connect("not-even-valid.onion", 8333),
        ):
            error = failure(call())
            self.assertIsInstance(error, ConnectFailed)
            self.assertEqual(str(error), NO_PROXY)
        self.assertEqual(
            str(failure(node.connect(str(overlay(1)[1])))),
            "cannot reach I2P addresses: bitp2p has no proxy",
        )
        self.assertEqual(
            str(failure(node.connect(str(overlay(1)[2])))),
            "cannot reach CJDNS addresses: bitp2p has no proxy",
        )
        self.assertEqual(reactor.tcpClients, [])
        self.assertEqual(reactor.nameResolver.asked, [])

    def test_addnodeAndConnectRefuseThem(self):
        onion = str(overlay(1)[0])
        for key in ("addnodes", "connect"):
            with self.assertRaises(ValueError) as caught:
                NodeConfig(**{key: [onion]})
            self.assertEqual(str(caught.exception), NO_PROXY)
        node = makeNode(6001, MemoryReactorClock())
        with self.assertRaises(ValueError) as caught:
            node.addManual(onion)
        self.assertEqual(str(caught.exception), NO_PROXY)

    def test_seednodeIsNeverDialedNorResolved(self):
        reactor = MemoryReactorClock()
        reactor.nameResolver = FakeResolver({})
        makeNode(6001, reactor, seednodes=["example.onion:8333", str(overlay(1)[0])])
        reactor.advance(3600)
        self.assertEqual(reactor.tcpClients, [])
        self.assertEqual(reactor.nameResolver.asked, [])

    def test_seedNamesOfOverlayNetworksAreNotResolved(self):
        reactor = MemoryReactorClock()
        reactor.nameResolver = FakeResolver({"seeds.example": ["10.0.0.1"]})
        onion = overlay(1)[0]
        node = makeNode(6001, reactor, seeds=["example.onion:7000", "seeds.example:7000", str(onion)])
        self.assertEqual(reactor.nameResolver.asked, [("seeds.example", 7000)])
        # A valid onion seed is stored, never dialed.
        self.assertEqual(
            {info.address for info in node.book}, {Address.of("10.0.0.1", 7000), onion}
        )
        self.assertEqual(dialed(reactor), [Address.of("10.0.0.1", 7000)])
