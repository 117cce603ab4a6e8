"""
The simulated clock and the in-memory TCP network under L{bitp2p.testing}.

Owns L{MemoryNetwork} (one clock, the listeners, the open connections, the
links between hosts with their latencies, partitions and hosts that are
down, and the byte and message counters) and L{MemoryHost} (the reactor of
one machine on it), with their private helpers: the listening port, the
dial in progress, the two ends of a connection and the name resolver.

It is a reactor and nothing more: it must not know nodes, peers or the
protocol (it never imports L{bitp2p.node}); bytes are bytes, and a
"message" is a newline-terminated line.

The clock keeps its calls in a heap: C{task.Clock} re-sorts its list on
every C{callLater}, which is quadratic with the tens of thousands of timers
a thousand nodes keep. A node's timer is a L{_Timer}, Twisted's
C{DelayedCall} in all but its class, made cheap for the many that nodes
set and mostly cancel (no C{__dict__}, no bound methods kept in it); a
cancelled or moved timer leaves its entry behind, and the heap is rebuilt
without them once they are most of it. The network's own events (a dial
reaching the other end, bytes arriving, a close) go on the same heap as a
bare function and argument, without a timer object; and what one end
writes for the same arrival time travels as one delivery, as TCP coalesces
segments, so that the clock's cost per message stays small beside the
node's.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import itertools
import math
from heapq import heappush
from statistics import NormalDist
from typing import Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.base import DelayedCall
from twisted.internet.error import (
    AlreadyCalled,
    AlreadyCancelled,
    CannotListenError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    NoRouteError,
    TimeoutError,
)
from twisted.internet.interfaces import (
    IDelayedCall,
    IHostnameResolver,
    IHostResolution,
    IListeningPort,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    ITCPTransport,
)
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "ANY_INTERFACES",
    "DEFAULT_LATENCY_S",
    "EPOCH_2026",
    "MemoryHost",
    "MemoryNetwork",
    "lognormalLatency",
]

DEFAULT_LATENCY_S = 0.05
"""One-way delay of a link, in seconds, unless told otherwise."""

EPOCH_2026 = 1_767_225_600.0
"""2026-01-01 00:00 UTC in unix seconds: a start for a simulated clock whose
times are taken as dates. A clock that starts at 0 (the default, for tests
that count from 0) makes every address heard second-hand in its first two
hours "never seen" (a relayed address's time is set back two hours, and
not below 0), so addresses managers throw them away first: simulations of
discovery start here."""

ANY_INTERFACES = ("", "0.0.0.0", "::")
"""The interfaces that mean "all of this host's addresses" when listening."""


def _ignore(call: DelayedCall) -> None:
    """
    What cancelling a call does at once: nothing (the heap skips it).
    """


_COMPACT_MIN = 1024
"""The heap is rebuilt without its dead entries only once it holds more
than this many entries, and more dead than live ones."""

_TIMER = object()
"""The argument slot of a heap entry that holds a L{_Timer}."""


@implementer(IDelayedCall)
class _Timer:
    """
    A timer on a L{MemoryNetwork}'s clock: what its C{callLater} returns.

    It is Twisted's C{DelayedCall} in all but its class, for what callers
    use (C{getTime}, C{cancel}, C{reset}, C{delay}, C{active}, and the
    C{time}, C{func}, C{args}, C{kw}, C{cancelled}, C{called} and
    C{delayed_time} attributes, with the same meanings and errors), but
    built for the thousands that nodes make and mostly cancel: no
    C{__dict__}, no bound methods of the clock kept in it, nothing on the
    heap but one entry.

    As in Twisted, a reset or delay to later only records it
    (C{delayed_time}): the entry is moved when its old time comes. A reset
    to sooner pushes a new entry; the old one then stands for nothing, as
    does a cancelled timer's, until the heap drops it or its time comes.

    @ivar kw: the keyword arguments, or L{None} if there are none.
    @ivar func: what it calls; L{None} once cancelled (as are C{args} and
        C{kw}: a cancelled timer lets go of them at once, where Twisted's
        deletes them).
    """

    __slots__ = ("time", "func", "args", "kw", "cancelled", "called", "delayed_time", "_network")

    def __init__(self, time: float, func, args: tuple, kw, network: MemoryNetwork) -> None:
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw or None
        self.cancelled = self.called = 0
        self.delayed_time = 0.0
        self._network = network

    def getTime(self) -> float:
        return self.time + self.delayed_time

    def active(self) -> bool:
        return not (self.cancelled or self.called)

    def cancel(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.cancelled = 1
        # Let go of what it would have called (its entry may stay a while).
        self.func = self.args = self.kw = None
        network = self._network
        network._dead += 1
        if network._dead * 2 > len(network._heap) > _COMPACT_MIN:
            network._compact()

    def reset(self, secondsFromNow: float) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        newTime = self._network.now + secondsFromNow
        if newTime < self.time:
            self.delayed_time = 0.0
            self.time = newTime
            self._moved()
        else:
            self.delayed_time = newTime - self.time

    def delay(self, secondsLater: float) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.delayed_time += secondsLater
        if self.delayed_time < 0.0:
            self.activate_delay()
            self._moved()

    def activate_delay(self) -> None:
        self.time += self.delayed_time
        self.delayed_time = 0.0

    def _moved(self) -> None:
        """
        Its time came sooner: a new entry on the heap, and the old one
        stands for nothing now.
        """
        network = self._network
        network._push(self)
        network._dead += 1
        if network._dead * 2 > len(network._heap) > _COMPACT_MIN:
            network._compact()

    def __repr__(self) -> str:
        func = getattr(self.func, "__qualname__", None) or repr(self.func)
        state = "cancelled" if self.cancelled else "called" if self.called else "pending"
        return f"<_Timer at {self.getTime()!r} ({state}) {func}{self.args!r}>"


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    return IPv6Address("TCP", host, port) if ":" in host else IPv4Address("TCP", host, port)


def _link(a: str, b: str) -> frozenset:
    return frozenset((a, b))


def lognormalLatency(
    median: float = DEFAULT_LATENCY_S,
    sigma: float = 0.7,
    low: float = 0.005,
    high: float = 0.3,
    seed: int = 0,
) -> Callable[[str, str], float]:
    """
    A latency model for L{MemoryNetwork}C{(latencyModel=...)}: the one-way
    delay between two hosts drawn from a lognormal distribution around
    C{median} seconds (C{sigma} the standard deviation of its logarithm),
    clipped to C{[low, high]}. Each pair's draw comes from a hash of the
    pair and C{seed}, so it is the same both ways, on every call and in
    every run, and nothing is stored.
    """
    if not 0 <= low <= median <= high:
        raise ValueError(f"need 0 <= low <= median <= high, not {low!r}, {median!r}, {high!r}")
    logMedian = math.log(median) if median > 0 else -math.inf
    inverse = NormalDist().inv_cdf
    salt = seed.to_bytes(8, "big", signed=True)

    def latency(a: str, b: str) -> float:
        if b < a:
            a, b = b, a
        digest = hashlib.blake2b(f"{a} {b}".encode(), digest_size=8, key=salt).digest()
        # A uniform draw in (0, 1), never 0 or 1 (inv_cdf refuses them).
        u = (int.from_bytes(digest, "big") + 0.5) / 2**64
        return min(high, max(low, math.exp(logMedian + sigma * inverse(u))))

    return latency


@implementer(IReactorTime, IReactorTCP)
class MemoryNetwork:
    """
    A simulated clock with an in-memory TCP network on it.

    Give each node the reactor of its own machine, L{host}C{(ip)}: a
    connection dialed from there comes from C{ip}. Bytes written on one end
    of a connection reach the other C{latency} seconds later, in order, on
    the simulated clock; closing takes as long. Nothing happens until
    L{advance} moves the clock.

    @ivar now: the simulated time, in seconds (C{start} at the start: 0
        unless told otherwise, see L{EPOCH_2026}).
    @ivar latency: the one-way delay, in seconds, of links without one of
        their own (L{setLatency}) when there is no C{latencyModel}; a change
        applies to connections made after it.
    @ivar latencyModel: L{None}, or a callable C{(a, b) -> seconds} giving
        the one-way delay between hosts C{a} and C{b} (the dialer's address
        and the listener's) for links without one of their own, asked once
        per connection when it is dialed (so that a network of N hosts
        needs no N^2 table; see L{lognormalLatency}). It should give the
        same delay both ways.
    @ivar bytesSent: bytes written on all connections so far.
    @ivar messagesSent: messages (newline-terminated lines) written on all
        connections so far.
    @ivar names: host names L{MemoryHost.nameResolver} resolves, each to a
        list of IP addresses (see L{addName}); IP literals resolve to
        themselves.
    """

    def __init__(
        self,
        latency: float = DEFAULT_LATENCY_S,
        latencyModel: Callable[[str, str], float] | None = None,
        start: float = 0.0,
    ) -> None:
        if not latency >= 0:
            raise ValueError(f"latency must be >= 0, not {latency!r}")
        self.now = float(start)
        self.latency = latency
        self.latencyModel = latencyModel
        self.bytesSent = 0
        self.messagesSent = 0
        self.names: dict[str, list[str]] = {}
        self._heap: list = []
        self._dead = 0  # entries of the heap that stand for nothing now
        self._seq = itertools.count()
        self._listeners: dict[tuple[str, int], object] = {}
        self._ephemeral = itertools.count(40000)
        self._hosts: dict[str, MemoryHost] = {}
        self._latencies: dict[frozenset, float] = {}
        self._partitions: set[frozenset] = set()
        self._down: set[str] = set()
        # The client end of every open connection, in the order they opened.
        self._open: dict[_Transport, None] = {}

    # -- IReactorTime -----------------------------------------------------------

    def seconds(self) -> float:
        return self.now

    def callLater(self, delay, f, *args, **kw) -> _Timer:
        when = self.now + delay
        call = _Timer(when, f, args, kw, self)
        heappush(self._heap, (when, next(self._seq), call, _TIMER))
        return call

    def _callAt(self, when: float, f, *args) -> _Timer:
        call = _Timer(when, f, args, None, self)
        heapq.heappush(self._heap, (when, next(self._seq), call, _TIMER))
        return call

    def _push(self, call: _Timer) -> None:
        heapq.heappush(self._heap, (call.time + call.delayed_time, next(self._seq), call, _TIMER))

    def _compact(self) -> None:
        """
        Drop the entries of the heap that stand for nothing now (cancelled
        timers, and the old places of timers moved sooner): called once
        most of them do, as the thousands of timeouts that nodes cancel
        would otherwise stay until their time, most of the heap and its
        memory, and every push and pop would pay for them.
        """
        heap = self._heap
        heap[:] = [
            e
            for e in heap
            if e[3] is not _TIMER or not (e[2].cancelled or e[2].called or e[0] != e[2].time)
        ]
        heapq.heapify(heap)
        self._dead = 0

    def _schedule(self, when: float, f, arg) -> None:
        """
        Run C{f(arg)} at C{when}: one of the network's own events, which
        nothing cancels (cheaper than a L{_Timer}).
        """
        heapq.heappush(self._heap, (when, next(self._seq), f, arg))

    def getDelayedCalls(self) -> list[IDelayedCall]:
        """
        The timers still due, and the network's own events still to come
        (bytes and closes on their way, dials about to arrive), the latter
        as C{DelayedCall}s that only describe them: cancelling one does
        nothing.
        """
        calls = []
        for when, _, c, arg in self._heap:
            if arg is _TIMER:
                if not (c.cancelled or c.called):
                    calls.append(c)
            else:
                calls.append(DelayedCall(when, c, (arg,), {}, _ignore, _ignore, self.seconds))
        return calls

    def advance(self, amount: float) -> None:
        """
        Move time forward by C{amount} seconds, running every call that
        falls due on the way, in order (calls due at the same time in the
        order they were made).
        """
        if amount < 0:
            raise ValueError(f"cannot go back in time ({amount!r} s)")
        until = self.now + amount
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= until:
            when, _, call, arg = pop(heap)
            if arg is not _TIMER:
                if when > self.now:
                    self.now = when
                call(arg)
                continue
            if call.cancelled or call.called:
                self._dead -= 1
                continue
            if call.delayed_time > 0:
                call.activate_delay()
                self._push(call)
                continue
            if when != call.time:
                self._dead -= 1
                continue  # rescheduled: a newer entry stands for it
            if when > self.now:
                self.now = when
            call.called = 1
            if call.kw is None:
                call.func(*call.args)
            else:
                call.func(*call.args, **call.kw)
        self.now = until

    # -- IReactorTCP --------------------------------------------------------------

    def listenTCP(self, port: int, factory, backlog: int = 50, interface: str = "") -> _Port:
        """
        Listen on C{interface}, port C{port} (0: a free one). Connections
        dialed to exactly that address and port reach C{factory}.
        """
        if port == 0:
            port = next(p for p in itertools.count(20000) if (interface, p) not in self._listeners)
        key = (interface, port)
        if key in self._listeners:
            raise CannotListenError(interface, port, OSError("address in use"))
        self._listeners[key] = factory
        factory.doStart()
        return _Port(self, key, factory)

    def connectTCP(
        self, host: str, port: int, factory, timeout=30, bindAddress=None, source="127.0.0.1"
    ) -> _Connector:
        """
        Dial C{host}:C{port} from C{source} (or from C{bindAddress}, if it
        names one address). The attempt reaches the other end one latency
        later.
        """
        if bindAddress is not None and bindAddress[0] not in ANY_INTERFACES:
            source = bindAddress[0]
        connector = _Connector(self, host, port, factory, source, timeout)
        # As a real reactor does (endpoints need it to cancel a dial).
        factory.startedConnecting(connector)
        if self._latencies or self.latencyModel is not None:
            latency = self.latencyOf(source, host)
        else:
            latency = self.latency
        connector.latency = latency
        self._schedule(self.now + latency, _Connector._connect, connector)
        return connector

    # -- machines, names and links -------------------------------------------------

    def host(self, ip: str) -> MemoryHost:
        """
        The machine at C{ip}: the reactor to give the node there (this
        network and clock, with outgoing connections from C{ip}) and its
        counters. The same object for the same C{ip}.
        """
        host = self._hosts.get(ip)
        if host is None:
            host = self._hosts[ip] = MemoryHost(self, ip)
        return host

    def addName(self, name: str, *ips: str) -> None:
        """
        Make the host name C{name} resolve to C{ips} (in that order), as a
        DNS seed would.
        """
        self.names[name.lower()] = list(ips)

    def resolve(self, name: str) -> list[str]:
        """
        The IP addresses C{name} resolves to: itself if it is an IP
        literal, else what L{addName} gave (none if nothing).
        """
        try:
            return [str(ipaddress.ip_address(name))]
        except ValueError:
            return list(self.names.get(name.lower(), ()))

    def latencyOf(self, a: str, b: str) -> float:
        """
        The one-way delay between hosts C{a} and C{b}, in seconds: the
        link's own (L{setLatency}), else the C{latencyModel}'s, else the
        network's C{latency}.
        """
        if self._latencies:
            latency = self._latencies.get(_link(a, b))
            if latency is not None:
                return latency
        model = self.latencyModel
        if model is not None:
            latency = model(a, b)
            if not latency >= 0:
                raise ValueError(f"the latency model gave {latency!r} for {a} - {b}")
            return latency
        return self.latency

    def setLatency(self, a: str, b: str, seconds: float | None) -> None:
        """
        Set the one-way delay between hosts C{a} and C{b} (L{None}: back to
        the C{latencyModel}'s or the network's C{latency}), for their open
        connections too. Bytes
        already on their way keep their time, and none overtakes another.
        """
        if seconds is None:
            self._latencies.pop(_link(a, b), None)
        elif not seconds >= 0:
            raise ValueError(f"latency must be >= 0, not {seconds!r}")
        else:
            self._latencies[_link(a, b)] = seconds
        for end in self._between(a, b):
            end.latency = end.other.latency = self.latencyOf(a, b)

    def connections(self, ip: str | None = None) -> list[tuple[IPv4Address | IPv6Address, ...]]:
        """
        The open connections, as C{(dialer's address, listener's address)}
        pairs, in the order they opened: all of them, or those with an end
        at C{ip}.
        """
        return [
            (end.host, end.peer)
            for end in self._open
            if ip is None or ip in (end.host.host, end.peer.host)
        ]

    def disconnect(self, a: str, b: str) -> int:
        """
        Cut every open connection between hosts C{a} and C{b}, as a link
        failing would: the bytes on their way are lost, and both ends are
        told (C{ConnectionLost}) at once on the clock, that is in the next
        L{advance} (even by 0). New connections may be made at once.

        @return: how many connections were cut.
        """
        ends = self._between(a, b)
        for end in ends:
            end._cut("the link was cut")
        return len(ends)

    def partition(self, a: str, b: str) -> int:
        """
        Cut the link between hosts C{a} and C{b} until L{heal}: their open
        connections are cut (as L{disconnect} does), and a dial from one to
        the other gets no answer and fails when its timeout runs out
        (C{TimeoutError}), as when packets are dropped.

        @return: how many connections were cut.
        """
        self._partitions.add(_link(a, b))
        return self.disconnect(a, b)

    def heal(self, a: str, b: str) -> None:
        """
        Undo L{partition}C{(a, b)}.
        """
        self._partitions.discard(_link(a, b))

    def hostDown(self, ip: str) -> int:
        """
        Take the host at C{ip} off the network until L{hostUp}: its open
        connections are cut, dials to it are refused and dials from it fail
        (C{NoRouteError}). Its listeners stay in place.

        @return: how many connections were cut.
        """
        self._down.add(ip)
        ends = [end for end in self._open if ip in (end.host.host, end.peer.host)]
        for end in ends:
            end._cut(f"host {ip} went down")
        return len(ends)

    def hostUp(self, ip: str) -> None:
        """
        Undo L{hostDown}C{(ip)}.
        """
        self._down.discard(ip)

    def isUp(self, ip: str) -> bool:
        return ip not in self._down

    def _between(self, a: str, b: str) -> list[_Transport]:
        pair = {a, b}
        return [end for end in self._open if {end.host.host, end.peer.host} == pair]

    # The names of bench/simnet.py's SimReactor.
    @property
    def bytes(self) -> int:
        return self.bytesSent

    @property
    def lines(self) -> int:
        return self.messagesSent


@implementer(IReactorTime, IReactorTCP, IReactorPluggableNameResolver)
class MemoryHost:
    """
    One machine on a L{MemoryNetwork}: the reactor of the nodes that run on
    it. Time and timers are the network's; connections it dials come from
    its address; listening on all interfaces (C{""}, C{0.0.0.0}, C{::})
    listens on its address.

    @ivar network: the L{MemoryNetwork}.
    @ivar ip: its address.
    @ivar bytesSent: bytes written on connections from this host's end.
    @ivar messagesSent: messages (lines) written from this host's end.
    @ivar nameResolver: an C{IHostnameResolver} that resolves with
        L{MemoryNetwork.resolve}, on the clock.
    """

    def __init__(self, network: MemoryNetwork, ip: str) -> None:
        self.network = network
        self.ip = ip
        self.seconds = network.seconds
        self.callLater = network.callLater
        self.getDelayedCalls = network.getDelayedCalls
        self.bytesSent = 0
        self.messagesSent = 0
        self.nameResolver = _MemoryResolver(network)

    def __repr__(self) -> str:
        return f"<MemoryHost {self.ip}>"

    def listenTCP(self, port: int, factory, backlog: int = 50, interface: str = "") -> _Port:
        if interface in ANY_INTERFACES:
            interface = self.ip
        return self.network.listenTCP(port, factory, backlog, interface)

    def connectTCP(self, host: str, port: int, factory, timeout=30, bindAddress=None) -> _Connector:
        return self.network.connectTCP(host, port, factory, timeout, bindAddress, self.ip)

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        previous, self.nameResolver = self.nameResolver, resolver
        return previous

    @property
    def up(self) -> bool:
        """
        Whether the host is on the network (see L{MemoryNetwork.hostDown}).
        """
        return self.network.isUp(self.ip)


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        raise NotImplementedError()


@implementer(IHostnameResolver)
class _MemoryResolver:
    """
    Resolves with L{MemoryNetwork.resolve}; the answer comes on the clock.
    """

    def __init__(self, network: MemoryNetwork) -> None:
        self._network = network

    def resolveHostName(
        self, resolutionReceiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"
    ):
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        addresses = [_address(ip, portNumber) for ip in self._network.resolve(hostName)]
        if addressTypes is not None:
            addresses = [a for a in addresses if type(a) in tuple(addressTypes)]

        def answer() -> None:
            for address in addresses:
                resolutionReceiver.addressResolved(address)
            resolutionReceiver.resolutionComplete()

        self._network.callLater(0, answer)
        return resolution


@implementer(IListeningPort)
class _Port:
    def __init__(self, network: MemoryNetwork, key: tuple[str, int], factory) -> None:
        self._network, self._key, self._factory = network, key, factory
        self._listening = True

    def startListening(self) -> None:
        pass  # listening since it was made

    def getHost(self):
        return _address(*self._key)

    def stopListening(self) -> None:
        if self._listening:
            self._listening = False
            if self._network._listeners.get(self._key) is self._factory:
                del self._network._listeners[self._key]
            self._factory.doStop()


class _Connector:
    """
    One dial in progress.

    (The paths a dial and a connection take call no more functions than
    bench/simnet.py's did, so that the benchmarks' counts of Python calls
    stay comparable.)
    """

    def __init__(
        self, network: MemoryNetwork, host: str, port: int, factory, source: str, timeout
    ) -> None:
        self.network, self.host, self.port, self.factory = network, host, port, factory
        self.source = source
        self.timeout = timeout
        self.stopped = False
        self.latency = network.latency
        self._started = network.now
        self._timer: _Timer | None = None  # the timeout of a dial into a partition
        factory.doStart()

    def stopConnecting(self) -> None:
        self.stopped = True
        if self._timer is not None:
            timer, self._timer = self._timer, None
            if timer.active():
                timer.cancel()

    disconnect = stopConnecting

    def getDestination(self):
        return _address(self.host, self.port)

    def _fail(self, error: Exception) -> None:
        self._timer = None
        if not self.stopped:
            self.stopped = True
            self.factory.clientConnectionFailed(self, Failure(error))

    def _connect(self) -> None:
        if self.stopped:
            return
        network = self.network
        here, there = self.source, self.host
        sourcePort = next(network._ephemeral)
        if ":" in here:
            source = IPv6Address("TCP", here, sourcePort)
        else:
            source = IPv4Address("TCP", here, sourcePort)
        if ":" in there:
            target = IPv6Address("TCP", there, self.port)
        else:
            target = IPv4Address("TCP", there, self.port)
        if network._down and (here in network._down or there in network._down):
            if there in network._down:
                self._fail(ConnectionRefusedError(f"host {there} is down"))
            else:
                self._fail(NoRouteError(f"host {here} is down"))
            return
        if network._partitions and _link(here, there) in network._partitions:
            # The attempt is lost on the way: the dial times out.
            if self.timeout is not None:
                when = max(network.now, self._started + self.timeout)
                self._timer = network._callAt(
                    when, self._fail, TimeoutError(f"{there}:{self.port} unreachable")
                )
            return
        server = network._listeners.get((there, self.port))
        serverProto = server.buildProtocol(source) if server is not None else None
        if serverProto is None:
            self.factory.clientConnectionFailed(self, Failure(ConnectionRefusedError()))
            return
        clientProto = self.factory.buildProtocol(target)
        hosts = network._hosts
        a = _Transport(
            network,
            clientProto,
            source,
            target,
            self.latency,
            hosts[here] if here in hosts else network.host(here),
        )
        b = _Transport(
            network,
            serverProto,
            target,
            source,
            self.latency,
            hosts[there] if there in hosts else network.host(there),
        )
        a.other, b.other = b, a
        network._open[a] = None
        serverProto.makeConnection(b)
        if clientProto is None:
            a.closed = True  # the dialer's factory refused it: it hangs up
            b.loseConnection()
            return
        clientProto.makeConnection(a)


@implementer(ITCPTransport)
class _Transport:
    """
    One end of an in-memory connection.

    @ivar host: this end's address.
    @ivar peer: the other end's address.
    @ivar sender: the L{MemoryHost} whose counters this end's writes add to.
    """

    disconnecting = False

    def __init__(
        self,
        network: MemoryNetwork,
        protocol,
        host,
        peer,
        latency: float,
        sender: MemoryHost,
    ) -> None:
        self.network = network
        self.protocol = protocol
        self.host, self.peer = host, peer
        self.latency = latency
        self.sender = sender
        self.other: _Transport | None = None
        self.closed = False
        self.producer = None
        self._arrival = 0.0  # when the last byte written so far arrives
        # What was written and has not arrived yet, one item a delivery (on
        # the heap, in order: the last is the one due at _arrival): the
        # bytes of one write, or a list of those of several writes that
        # arrive together.
        self._onWay: list = []
        self._paused = False
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if self.disconnecting or self.closed:
            return
        network = self.network
        size, lines = len(data), data.count(b"\n")
        network.bytesSent += size
        network.messagesSent += lines
        sender = self.sender
        sender.bytesSent += size
        sender.messagesSent += lines
        when = network.now + self.latency
        onWay = self._onWay
        if when <= self._arrival:
            if onWay:
                # Arrives with what is already on its way for that time.
                last = onWay[-1]
                if last.__class__ is list:
                    last.append(data)
                else:
                    onWay[-1] = [last, data]
                return
            when = self._arrival  # the latency dropped: no overtaking
        self._arrival = when
        onWay.append(data)
        heappush(network._heap, (when, next(network._seq), _Transport._deliver, self))

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def _deliver(self) -> None:
        """
        Hand the oldest delivery on its way to the other end: its bytes have
        arrived.
        """
        data = self._onWay.pop(0)
        other = self.other
        if other.closed:
            return
        if data.__class__ is list:
            data = b"".join(data)
        if other._paused:
            other._held.append(data)
        else:
            other.protocol.dataReceived(data)

    def loseConnection(self) -> None:
        """
        Close once what was written has arrived: both ends are told
        (C{ConnectionDone}) one latency later.
        """
        if not self.disconnecting:
            self.disconnecting = True
            when = self.network.now + self.latency
            if when < self._arrival:
                when = self._arrival
            self.network._schedule(when, _Transport._close, self)

    # No RST: what was written still arrives first.
    abortConnection = loseConnection
    loseWriteConnection = loseConnection

    def _close(self) -> None:
        live = self.network._open
        if self in live:
            del live[self]
        elif self.other in live:
            del live[self.other]
        for end in (self, self.other):
            if not end.closed:
                end.closed = True
                end.disconnecting = True
                end.protocol.connectionLost(Failure(ConnectionDone()))

    def _cut(self, why: str) -> None:
        network = self.network
        live = network._open
        if self in live:
            del live[self]
        elif self.other in live:
            del live[self.other]
        ends = [end for end in (self, self.other) if not end.closed]
        for end in ends:
            end.closed = end.disconnecting = True
        for end in ends:
            network._schedule(network.now, end.protocol.connectionLost, Failure(ConnectionLost(why)))

    def getPeer(self):
        return self.peer

    def getHost(self):
        return self.host

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpNoDelay(self, enabled) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled) -> None:
        pass

    # IConsumer: there is no send buffer to fill, so a producer is never paused.
    def registerProducer(self, producer, streaming) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    # IPushProducer: stop and resume reading.
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._held and not self._paused and not self.closed:
            self.protocol.dataReceived(self._held.pop(0))

    def stopProducing(self) -> None:
        self.loseConnection()
