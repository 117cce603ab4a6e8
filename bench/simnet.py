"""
An in-memory network on a simulated clock, for bitp2p's own node code.

L{SimReactor} provides what a L{bitp2p.Node} uses of a reactor (time,
C{listenTCP}, C{connectTCP}) with no sockets: bytes written on one end are
delivered to the other after a fixed latency, on the simulated clock. The
node, peer, wire and codec code is exactly what runs on real sockets.

The clock keeps its calls in a heap (C{task.Clock} re-sorts its list on every
C{callLater}, which is quadratic with the tens of thousands of timers a
thousand nodes keep).
"""

from __future__ import annotations

import heapq
import itertools

from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.python.failure import Failure

LATENCY_S = 0.05


class SimReactor:
    """
    A simulated clock with in-memory TCP.

    @ivar bytes: bytes written on all connections so far.
    @ivar lines: messages (newline-terminated lines) written so far.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list = []
        self._seq = itertools.count()
        self._listeners: dict[tuple[str, int], object] = {}
        self._ephemeral = itertools.count(40000)
        self.bytes = 0
        self.lines = 0

    # IReactorTime
    def seconds(self) -> float:
        return self.now

    def callLater(self, delay, f, *args, **kw) -> DelayedCall:
        call = DelayedCall(
            self.now + delay, f, args, kw, lambda c: None, self._push, seconds=self.seconds
        )
        self._push(call)
        return call

    def _push(self, call: DelayedCall) -> None:
        heapq.heappush(self._heap, (call.getTime(), next(self._seq), call))

    def getDelayedCalls(self):
        return [c for _, _, c in self._heap if not (c.cancelled or c.called)]

    def advance(self, amount: float) -> None:
        """
        Move time forward, running every call that falls due on the way.
        """
        until = self.now + amount
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, _, call = heapq.heappop(heap)
            if call.cancelled or call.called:
                continue
            if call.delayed_time > 0:
                call.activate_delay()
                self._push(call)
                continue
            if when != call.getTime():
                continue  # rescheduled: a newer entry stands for it
            self.now = max(self.now, when)
            call.called = 1
            call.func(*call.args, **call.kw)
        self.now = until

    # IReactorTCP
    def listenTCP(self, port, factory, backlog=50, interface=""):
        key = (interface, port)
        if key in self._listeners:
            from twisted.internet.error import CannotListenError

            raise CannotListenError(interface, port, OSError("address in use"))
        self._listeners[key] = factory
        factory.doStart()
        return _Port(self, key, factory)

    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None, source="127.0.0.1"):
        connector = _Connector(self, host, port, factory, source)
        # As a real reactor does (endpoints need it to cancel a dial).
        factory.startedConnecting(connector)
        self.callLater(LATENCY_S, connector._connect)
        return connector

    def host(self, ip: str) -> SimHost:
        """
        The reactor to give the node at C{ip}: this network and clock, with
        outgoing connections from C{ip}.
        """
        return SimHost(self, ip)


class SimHost:
    """
    One machine on a L{SimReactor} network.
    """

    def __init__(self, network: SimReactor, ip: str) -> None:
        self.network = network
        self.ip = ip
        self.seconds = network.seconds
        self.callLater = network.callLater
        self.getDelayedCalls = network.getDelayedCalls
        self.listenTCP = network.listenTCP

    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None):
        return self.network.connectTCP(host, port, factory, timeout, bindAddress, self.ip)


class _Port:
    def __init__(self, reactor: SimReactor, key, factory) -> None:
        self._reactor, self._key, self._factory = reactor, key, factory

    def getHost(self):
        return IPv4Address("TCP", *self._key)

    def stopListening(self):
        self._reactor._listeners.pop(self._key, None)
        self._factory.doStop()


class _Connector:
    def __init__(self, reactor: SimReactor, host, port, factory, source: str) -> None:
        self.reactor, self.host, self.port, self.factory = reactor, host, port, factory
        self.source = source
        self.stopped = False
        factory.doStart()

    def stopConnecting(self):
        self.stopped = True

    def disconnect(self):
        self.stopped = True

    def getDestination(self):
        return IPv4Address("TCP", self.host, self.port)

    def _connect(self) -> None:
        if self.stopped:
            return
        reactor = self.reactor
        server = reactor._listeners.get((self.host, self.port))
        source = IPv4Address("TCP", self.source, next(reactor._ephemeral))
        target = IPv4Address("TCP", self.host, self.port)
        serverProto = server.buildProtocol(source) if server is not None else None
        if serverProto is None:
            self.factory.clientConnectionFailed(self, Failure(ConnectionRefusedError()))
            return
        clientProto = self.factory.buildProtocol(target)
        a = _Transport(reactor, clientProto, host=source, peer=target)
        b = _Transport(reactor, serverProto, host=target, peer=source)
        a.other, b.other = b, a
        serverProto.makeConnection(b)
        clientProto.makeConnection(a)


class _Transport:
    """
    One end of an in-memory connection.
    """

    disconnecting = False

    def __init__(self, reactor: SimReactor, protocol, host, peer) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.host, self.peer = host, peer
        self.other: _Transport | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.disconnecting or self.closed:
            return
        reactor = self.reactor
        reactor.bytes += len(data)
        reactor.lines += data.count(b"\n")
        reactor.callLater(LATENCY_S, self.other._deliver, data)

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def _deliver(self, data: bytes) -> None:
        if not self.closed:
            self.protocol.dataReceived(data)

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.reactor.callLater(LATENCY_S, self._close)

    abortConnection = loseConnection

    def _close(self) -> None:
        for end in (self, self.other):
            if not end.closed:
                end.closed = True
                end.disconnecting = True
                end.protocol.connectionLost(Failure(ConnectionDone()))

    def getPeer(self):
        return self.peer

    def getHost(self):
        return self.host

    def setTcpNoDelay(self, enabled) -> None:
        pass

    def registerProducer(self, producer, streaming) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass
