"""
L{bitp2p.testing.memory} below the nodes: the latency model hook, the
delivery of bytes written in one instant, the clock's heap and its timers
(held to Twisted's C{DelayedCall} and C{task.Clock}), with plain Twisted
protocols on a L{MemoryNetwork}.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from bitp2p.testing import MemoryNetwork, TestNetwork, lognormalLatency


class Recorder(Protocol):
    """
    Keeps every chunk C{dataReceived} got, and the time it came.
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append((self.transport.network.now, data))

    def connectionLost(self, reason) -> None:
        self.lost = True


class Dialer(ClientFactory):
    def __init__(self) -> None:
        self.protocol = None

    def buildProtocol(self, addr):
        self.protocol = Recorder()
        return self.protocol


def connected(network: MemoryNetwork, a: str, b: str) -> tuple[Recorder, Recorder]:
    """
    A connection from host C{a} to host C{b} (port 7000), made on the
    clock: the dialer's and the listener's protocols.
    """
    servers: list[Recorder] = []

    class Server(Factory):
        def buildProtocol(self, addr):
            servers.append(Recorder())
            return servers[-1]

    network.host(b).listenTCP(7000, Server())
    dialer = Dialer()
    network.host(a).connectTCP(b, 7000, dialer)
    network.advance(1)
    assert dialer.protocol is not None and servers
    return dialer.protocol, servers[0]


def oneWay(network: MemoryNetwork, client: Recorder, server: Recorder) -> float:
    """
    How long a byte written by C{client} now takes to reach C{server}.
    """
    start, seen = network.now, len(server.chunks)
    client.transport.write(b"x")
    network.advance(10)
    assert len(server.chunks) == seen + 1
    return server.chunks[-1][0] - start


# -- the latency model hook ------------------------------------------------------


def test_latencyModelGivesEachLinkItsDelay():
    """
    With a latency model, each connection's delay is what the model says
    for its two hosts; the network's C{latency} is not used.
    """
    asked = []

    def model(a: str, b: str) -> float:
        asked.append((a, b))
        return {"10.0.0.2": 0.2, "10.0.0.3": 0.03}[b]

    network = MemoryNetwork(latency=1.0, latencyModel=model)
    c1, s1 = connected(network, "10.0.0.1", "10.0.0.2")
    c2, s2 = connected(network, "10.0.0.1", "10.0.0.3")
    assert oneWay(network, c1, s1) == pytest.approx(0.2)
    assert oneWay(network, c2, s2) == pytest.approx(0.03)
    assert network.latencyOf("10.0.0.1", "10.0.0.2") == pytest.approx(0.2)
    # Asked once per dial, not per write.
    assert asked.count(("10.0.0.1", "10.0.0.2")) == 2  # the dial and latencyOf


def test_dialTakesTheModelsLatency():
    """
    A dial reaches the listener one modelled latency after it was made.
    """
    network = MemoryNetwork(latency=1.0, latencyModel=lambda a, b: 0.25)
    accepted: list[float] = []

    class Server(Factory):
        def buildProtocol(self, addr):
            accepted.append(network.now)
            return Recorder()

    network.host("10.0.0.2").listenTCP(7000, Server())
    network.host("10.0.0.1").connectTCP("10.0.0.2", 7000, Dialer())
    network.advance(0.2)
    assert accepted == []
    network.advance(0.1)
    assert accepted == [pytest.approx(0.25)]


def test_setLatencyOverridesTheModelAndNoneGoesBack():
    """
    A link's own latency (L{MemoryNetwork.setLatency}) wins over the
    model, for its open connections too; C{None} gives the model's back.
    """
    network = MemoryNetwork(latencyModel=lambda a, b: 0.1)
    client, server = connected(network, "10.0.0.1", "10.0.0.2")
    network.setLatency("10.0.0.1", "10.0.0.2", 0.5)
    assert network.latencyOf("10.0.0.2", "10.0.0.1") == 0.5
    assert oneWay(network, client, server) == pytest.approx(0.5)
    network.setLatency("10.0.0.1", "10.0.0.2", None)
    assert network.latencyOf("10.0.0.1", "10.0.0.2") == 0.1
    assert oneWay(network, client, server) == pytest.approx(0.1)


def test_modelSetAfterwardsAppliesToNewConnections():
    """
    The model is an attribute: set later, it applies to connections dialed
    after; without one, the network's C{latency} is used.
    """
    network = MemoryNetwork(latency=0.05)
    old = connected(network, "10.0.0.1", "10.0.0.2")
    network.latencyModel = lambda a, b: 0.3
    new = connected(network, "10.0.0.1", "10.0.0.3")
    assert oneWay(network, *old) == pytest.approx(0.05)
    assert oneWay(network, *new) == pytest.approx(0.3)


def test_negativeModelLatencyIsRefused():
    network = MemoryNetwork(latencyModel=lambda a, b: -1.0)
    with pytest.raises(ValueError, match="latency model gave -1.0"):
        network.host("10.0.0.1").connectTCP("10.0.0.2", 7000, Dialer())


def test_nodesRunOnAModelledNetwork():
    """
    Real nodes measure the modelled round trip.
    """
    net = TestNetwork(seed=2)
    a, b = net.addNodes(2)
    net.network.latencyModel = lambda x, y: 0.12
    net.start()
    try:
        peer = net.connect(a, b)
        net.advance(120)
        assert peer.rtt_s == pytest.approx(0.24)
    finally:
        net.stop()


# -- lognormalLatency ----------------------------------------------------------------


def test_lognormalLatencyIsSymmetricAndRepeatable():
    model = lognormalLatency(seed=3)
    again = lognormalLatency(seed=3)
    other = lognormalLatency(seed=4)
    pairs = [(f"10.0.{i}.1", f"10.1.{i}.1") for i in range(50)]
    assert [model(a, b) for a, b in pairs] == [model(b, a) for a, b in pairs]
    assert [model(a, b) for a, b in pairs] == [again(a, b) for a, b in pairs]
    assert [model(a, b) for a, b in pairs] != [other(a, b) for a, b in pairs]


def test_lognormalLatencySpreadsAroundItsMedianWithinItsBounds():
    model = lognormalLatency(median=0.05, sigma=0.7, low=0.005, high=0.3)
    draws = [model(f"11.{i % 250}.{i // 250}.1", "12.0.0.1") for i in range(4000)]
    assert min(draws) >= 0.005 and max(draws) <= 0.3
    assert statistics.median(draws) == pytest.approx(0.05, rel=0.1)
    # Spread: the logarithms' deviation is about sigma (a little less:
    # clipped), and the draws are not all alike.
    assert statistics.pstdev([math.log(d) for d in draws]) == pytest.approx(0.7, rel=0.1)
    assert max(draws) > 2 * min(draws)


def test_lognormalLatencyRefusesBadBounds():
    with pytest.raises(ValueError):
        lognormalLatency(median=0.5, high=0.3)


# -- bytes in one instant, and the heap -------------------------------------------------


def test_writesOfOneInstantArriveTogetherInOrder():
    """
    What one end writes in one instant arrives as one chunk, in order;
    what it writes later arrives later, as another.
    """
    network = MemoryNetwork(latency=0.1)
    client, server = connected(network, "10.0.0.1", "10.0.0.2")
    client.transport.write(b"a\n")
    client.transport.writeSequence([b"b", b"c\n"])
    network.advance(0.05)
    client.transport.write(b"d\n")
    network.advance(1)
    assert [data for _, data in server.chunks] == [b"a\nbc\n", b"d\n"]
    assert [t for t, _ in server.chunks] == [pytest.approx(1.1), pytest.approx(1.15)]
    assert network.messagesSent == 3 and network.bytesSent == 7


def test_noOvertakingWhenTheLatencyDrops():
    """
    Bytes written after the latency dropped wait for those before them.
    """
    network = MemoryNetwork(latency=0.5)
    client, server = connected(network, "10.0.0.1", "10.0.0.2")
    client.transport.write(b"slow\n")
    network.setLatency("10.0.0.1", "10.0.0.2", 0.01)
    client.transport.write(b"fast\n")
    network.advance(1)
    assert b"".join(data for _, data in server.chunks) == b"slow\nfast\n"
    assert server.chunks[0][0] == pytest.approx(1.5)


def test_closeComesAfterTheBytes():
    network = MemoryNetwork(latency=0.1)
    client, server = connected(network, "10.0.0.1", "10.0.0.2")
    client.transport.write(b"bye\n")
    client.transport.loseConnection()
    assert [c.getTime() for c in network.getDelayedCalls()] == [pytest.approx(1.1)] * 2
    network.advance(1)
    assert server.chunks[-1][1] == b"bye\n" and server.lost and client.lost
    assert network.getDelayedCalls() == []


def test_cancelledTimersLeaveTheHeap():
    """
    Timers cancelled or moved by the thousand do not stay in the clock's
    heap until their time; the others still run, when they are due, in
    order, including one reset to later.
    """
    network = MemoryNetwork()
    ran: list[tuple[float, int]] = []
    calls = [network.callLater(100 + i, lambda i=i: ran.append((network.now, i))) for i in range(5000)]
    later = calls[1]
    later.reset(10_000)  # to later: kept in place, moved when it comes up
    for call in calls[10:]:
        call.cancel()
    assert len(network._heap) < 2500
    calls[2].reset(50)  # to sooner: a new entry
    network.advance(20_000)
    assert ran == [(50, 2), (100, 0)] + [(100 + i, i) for i in range(3, 10)] + [(10_000, 1)]
    assert network.getDelayedCalls() == [] and network._heap == []


# -- the timers' contract ---------------------------------------------------------------


def test_timerKeepsTheDelayedCallContract():
    """
    What C{callLater} returns is an C{IDelayedCall} that behaves as
    Twisted's: arguments and keywords passed on, C{getTime}, C{active},
    and the errors of cancelling, resetting or delaying a call that was
    cancelled or made.
    """
    network = MemoryNetwork(start=10.0)
    got = []
    call = network.callLater(5, lambda *a, **k: got.append((network.now, a, k)), 1, 2, x=3)
    assert verifyObject(IDelayedCall, call)
    assert call.getTime() == 15.0 and call.active()
    assert call.args == (1, 2) and call.kw == {"x": 3}
    network.advance(5)
    assert got == [(15.0, (1, 2), {"x": 3})]
    assert not call.active() and call.called
    for method, arg in [(call.cancel, ()), (call.reset, (1,)), (call.delay, (1,))]:
        with pytest.raises(AlreadyCalled):
            method(*arg)

    other = network.callLater(1, got.append, "never")
    other.cancel()
    assert not other.active() and other.cancelled
    assert other.func is None  # what it would have called is let go at once
    for method, arg in [(other.cancel, ()), (other.reset, (1,)), (other.delay, (1,))]:
        with pytest.raises(AlreadyCancelled):
            method(*arg)
    network.advance(10)
    assert len(got) == 1


def test_timersRunAsTwistedsClockRunsThem():
    """
    A random mix of calls made, cancelled, reset and delayed (sooner and
    later) runs in the same order, each at the same time, on a
    L{MemoryNetwork} as on Twisted's own C{task.Clock}; and once all have
    run or gone, nothing is left on the heap or counted dead.
    """
    rng = random.Random(7)
    network, clock = MemoryNetwork(), Clock()
    ran: dict[str, list] = {"network": [], "clock": []}
    pairs = []
    for step in range(3000):
        roll = rng.random()
        live = [p for p in pairs[-200:] if p[0].active()]
        if roll < 0.4 or not live:
            delay, i = rng.uniform(0, 100), len(pairs)
            pairs.append(
                (
                    network.callLater(delay, lambda i=i: ran["network"].append((i, network.now))),
                    clock.callLater(delay, lambda i=i: ran["clock"].append(i)),
                )
            )
        elif roll < 0.6:
            for call in rng.choice(live):
                call.cancel()
        elif roll < 0.75:
            seconds = rng.uniform(0, 100)
            for call in rng.choice(live):
                call.reset(seconds)
        elif roll < 0.85:
            pair = rng.choice(live)
            # Sooner or later, but not into the past.
            seconds = rng.uniform(max(-50, network.now - pair[0].getTime()), 50)
            for call in pair:
                call.delay(seconds)
        else:
            amount = rng.uniform(0, 20)
            network.advance(amount)
            clock.advance(amount)
        if step % 50 == 0:
            for a, b in pairs:
                assert a.active() == b.active()
                if a.active():
                    assert a.getTime() == pytest.approx(b.getTime())
    network.advance(1000)
    clock.advance(1000)
    assert [i for i, _ in ran["network"]] == ran["clock"]
    assert len(ran["clock"]) > 300
    # The clock runs a call with its time set to the end of the advance;
    # the network, at the call's own time.
    for i, when in ran["network"]:
        assert when == pytest.approx(pairs[i][1].getTime())
    assert network._heap == [] and network._dead == 0
