"""
DNS seeding as a fleet does it, against a real DNS server: C{twisted.names}
serves several A records for one name from an in-memory zone on
127.0.0.1 (UDP and TCP, a free port), a real C{twisted.names.client.Resolver}
asks it, and real nodes listen on 127.0.0.1, 127.0.0.2 and 127.0.0.3 with
one port (an A record carries no port). The first node finds the nodes that
came after it when the zone names them, at its next fallback to the seeds.

Trial TestCases on the real reactor, as L{tests.test_network}; every wait is
bounded and every port is closed.
"""

from __future__ import annotations

import socket

from twisted.internet import defer, reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IHostnameResolver
from twisted.internet._resolver import HostResolution
from twisted.names import client, common, dns, error, server
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from bitp2p.address import Address
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import ConnectionType

NAME = "bitp2p-headless.fleet.test"
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")

FAST = dict(
    maintenance_interval_s=0.1,
    advertise_interval_s=0.5,
    addr_rate_per_s=1000.0,
    seed_fallback_s=0.3,
    seed_retry_max_s=0.6,
)


class Zone(common.ResolverBase):
    """
    An in-memory authority: C{NAME}'s A records, which a test may change;
    every other name does not exist. Counts the questions about C{NAME}.
    """

    def __init__(self, addresses):
        common.ResolverBase.__init__(self)
        self.addresses = list(addresses)
        self.asked = 0

    def _lookup(self, name, cls, type, timeout=None):
        name = name.decode() if isinstance(name, bytes) else name
        if name.lower() != NAME:
            return defer.fail(error.AuthoritativeDomainError(name))
        self.asked += 1
        if type != dns.A:
            return defer.succeed(([], [], []))
        answers = [
            dns.RRHeader(NAME, dns.A, dns.IN, 5, dns.Record_A(host, 5), auth=True)
            for host in self.addresses
        ]
        return defer.succeed((answers, [], []))


@implementer(IHostnameResolver)
class NamesHostnameResolver:
    """
    An C{IHostnameResolver} (what a node resolves its seeds with) over a
    C{twisted.names} C{IResolver}: every A record of a name.
    """

    def __init__(self, resolver):
        self._resolver = resolver

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        resolution = HostResolution(hostName)
        receiver.resolutionBegan(resolution)
        d = self._resolver.lookupAddress(hostName)

        def answered(result):
            answers, authority, additional = result
            for record in answers:
                if record.type == dns.A:
                    receiver.addressResolved(
                        IPv4Address("TCP", record.payload.dottedQuad(), portNumber)
                    )

        d.addCallbacks(answered, lambda failure: None)
        d.addBoth(lambda _: receiver.resolutionComplete())
        return resolution


def freePort(hosts) -> int:
    """
    A TCP port free on every one of C{hosts} (tried a bounded number of
    times).
    """
    for _ in range(20):
        probe = socket.socket()
        probe.bind((hosts[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        others = []
        try:
            for host in hosts[1:]:
                s = socket.socket()
                others.append(s)
                s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for s in others:
                s.close()
    raise RuntimeError("no port free on every loopback address")


class DNSSeedTests(TestCase):
    timeout = 60

    def startDNS(self, zone) -> int:
        """
        Serve C{zone} on 127.0.0.1, UDP and TCP on one free port.
        """
        factory = server.DNSServerFactory(authorities=[zone])
        for _ in range(20):
            # A protocol of its own each try: one given up keeps its
            # transport until it has stopped.
            protocol = dns.DNSDatagramProtocol(factory)
            udp = reactor.listenUDP(0, protocol, interface="127.0.0.1")
            port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(port, factory, interface="127.0.0.1")
            except CannotListenError:
                udp.stopListening()
                continue
            self.addCleanup(tcp.stopListening)
            self.addCleanup(udp.stopListening)
            return port
        self.fail("no port free for both UDP and TCP")

    def startNode(self, host, port, resolver=None, **config) -> Node:
        for key, value in FAST.items():
            config.setdefault(key, value)
        config.setdefault("seeds", ())
        node = Node(NodeConfig(port=port, interface=host, **config), resolver=resolver)
        node.startService()
        self.addCleanup(lambda: node.stopService() if node.running else None)
        return node

    async def waitFor(self, predicate, what: str, seconds: float = 20.0) -> None:
        for _ in range(int(seconds / 0.05)):
            if predicate():
                return
            await task.deferLater(reactor, 0.05)
        self.fail(f"timed out after {seconds} s waiting for {what}")

    @defer.inlineCallbacks
    def test_firstNodeFindsTheNodesThatCameLaterByResolvingAgain(self):
        zone = Zone([HOSTS[0]])
        dnsPort = self.startDNS(zone)
        names = client.Resolver(servers=[("127.0.0.1", dnsPort)], reactor=reactor)
        port = freePort(HOSTS)
        a = self.startNode(HOSTS[0], port, NamesHostnameResolver(names),
                           seeds=[f"{NAME}:{port}"])
        # A resolved the name to itself only: nothing to dial, and its own
        # address is not a seed.
        yield defer.ensureDeferred(self.waitFor(lambda: zone.asked >= 1, "the first question"))
        self.assertEqual(len(a.book), 0)
        # B and C come later; they know nobody (no seeds), so only A's DNS
        # can bring them together.
        b = self.startNode(HOSTS[1], port)
        c = self.startNode(HOSTS[2], port)
        askedBefore = zone.asked
        yield defer.ensureDeferred(
            self.waitFor(lambda: zone.asked > askedBefore + 1, "A to ask again")
        )
        self.assertEqual(a.peers(), [])
        self.assertEqual(len(a.book), 0)
        # The headless Service now stands for all three pods.
        zone.addresses = list(HOSTS)

        def outboundTo():
            return {
                peer.address for peer in a.peers() if peer.kind is ConnectionType.OUTBOUND
            }

        expected = {Address.of(HOSTS[1], port), Address.of(HOSTS[2], port)}
        yield defer.ensureDeferred(
            self.waitFor(lambda: outboundTo() == expected, "A to dial B and C")
        )
        self.assertNotIn(Address.of(HOSTS[0], port), a.book)
        self.assertEqual({p.node_id for p in a.peers()}, {b.node_id, c.node_id})
        # A has its peers: the fallback stops asking.
        self.assertFalse(a.discovery.shortOfPeers())
        settled = zone.asked
        yield task.deferLater(reactor, 1.5)
        self.assertEqual(zone.asked, settled)
