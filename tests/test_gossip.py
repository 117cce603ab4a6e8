"""
Application messages (registerMessage, send, sendAll) and gossip (broadcast,
inv/getdata), between nodes linked in memory and against peers played by
hand.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from bitp2p import PeerLost, ProtocolViolation
from bitp2p.gossip import GETDATA_TIMEOUT_S, MAX_INV_ITEMS, SeenCache, message_id

from .helpers import Inbound, linkNodes, makeNode, receive, sent


def flush(pumps, rounds: int = 6) -> None:
    for _ in range(rounds):
        for pump in pumps:
            pump.flush()


class Recorder:
    """
    A handler that keeps what it is given.
    """

    def __init__(self) -> None:
        self.got: list[tuple[str, dict]] = []

    def __call__(self, peer, message) -> None:
        self.got.append((peer.node_id, message))

    @property
    def messages(self) -> list[dict]:
        return [message for _, message in self.got]


def chatValidator(message: dict) -> dict:
    if not isinstance(message.get("text"), str):
        raise ValueError("text must be a string")
    return {**message, "checked": True}


class MessageTypeTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.a = makeNode(6001, self.reactor)
        self.b = makeNode(6002, self.reactor)
        self.got = Recorder()
        self.a.registerMessage("chat", self.got, chatValidator)
        self.pump = linkNodes(self.a, self.b, self.reactor)

    def test_validMessagesReachTheHandlerAsTheValidatorReturnsThem(self):
        self.b.send(self.a.node_id, {"type": "chat", "text": "hi"})
        self.pump.flush()
        self.assertEqual(self.got.got, [(self.b.node_id, {"type": "chat", "text": "hi", "checked": True})])
        peer = self.a.findPeer(self.b.node_id)
        self.assertEqual(peer.direction.value, "inbound")
        self.assertEqual(str(peer.address), f"127.0.0.1:{self.b.listeningPort}")

    def test_anInvalidMessageIsAViolation(self):
        self.b.send(self.a.node_id, {"type": "chat", "text": 5})
        self.pump.flush()
        self.assertEqual(self.got.got, [])
        self.assertEqual(self.a.peers(), [])
        self.assertEqual(self.b.peers(), [])
        self.assertEqual(self.a.misbehavior.violations("127.0.0.1"), 1)

    def test_aHandlerThatRaisesIsLoggedAndTheConnectionStays(self):
        """
        The first failure is logged with its traceback; the peer can send
        the same message again and again, so the next ones are counted and
        summarised (issue 16, item 7). The connection stays.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def broken(peer, message):
            raise RuntimeError("application bug")

        self.a.registerMessage("chat", broken)
        self.b.sendAll({"type": "chat", "text": "one"})
        self.b.sendAll({"type": "chat", "text": "two"})
        self.b.sendAll({"type": "chat", "text": "three"})
        self.pump.flush()
        failures = [e for e in events if "log_failure" in e and "chat" in str(e.get("kind"))]
        self.assertEqual(len(failures), 1)
        self.assertEqual(len(self.a.peers()), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.a.repeated.pending(), {"Handler failures": 2})
        self.reactor.advance(60)
        [summary] = [e for e in events if e.get("repeated") == "Handler failures"]
        self.assertEqual(summary["count"], 2)

    def test_reservedAndEmptyTypesAreRefused(self):
        for reserved in ("version", "ping", "addr", "inv", "getdata", "notfound", ""):
            self.assertRaises(ValueError, self.a.registerMessage, reserved, self.got)
            self.assertRaises(ValueError, self.b.sendAll, {"type": reserved})

    def test_sendRefusesWhatPeersWouldRefuse(self):
        self.assertRaises(LookupError, self.b.send, "nobody", {"type": "chat", "text": "x"})
        self.assertRaises(ValueError, self.b.send, self.a.node_id, {"text": "no type"})
        self.assertRaises(ValueError, self.b.send, self.a.node_id, {"type": "chat", "x": {1, 2}})
        for number in (float("nan"), float("inf")):
            error = self.assertRaises(
                ValueError, self.b.send, self.a.node_id, {"type": "chat", "x": [None, number]}
            )
            self.assertIn("cannot be encoded as JSON", str(error))
            self.assertRaises(ValueError, self.b.broadcast, {"type": "chat", "x": number})
        big = {"type": "chat", "text": "x" * self.b.config.max_message_bytes}
        error = self.assertRaises(ValueError, self.b.send, self.a.node_id, big)
        self.assertIn("over the 1048576 peers accept", str(error))
        self.assertRaises(ValueError, self.b.broadcast, big)

    def test_unregisteredTypesAreIgnoredAgain(self):
        self.a.unregisterMessage("chat")
        self.assertFalse(self.a.handles("chat"))
        self.b.sendAll({"type": "chat", "text": "hi"})
        self.pump.flush()
        self.assertEqual(self.got.got, [])
        self.assertEqual(self.a.findPeer(self.b.node_id).messages_ignored, 1)

    def test_lifecycleEventsCarryThePeerAndTheReason(self):
        events = []
        c = makeNode(6003, self.reactor)
        self.a.observe(
            connected=lambda peer: events.append(("up", peer.node_id, peer.direction.value)),
            disconnected=lambda peer, reason: events.append(("down", peer.node_id, reason)),
        )
        pump = linkNodes(self.a, c, self.reactor)
        c.disconnect(self.a.node_id)
        pump.flush()
        self.assertEqual(events[0], ("up", c.node_id, "inbound"))
        self.assertEqual(events[1][:2], ("down", c.node_id))
        self.assertIsInstance(events[1][2], PeerLost)
        self.assertEqual(len(events), 2)


class BroadcastTests(SynchronousTestCase):
    def line(self, count: int, **config):
        """
        C{count} nodes in a line, each handling "news"; returns the nodes,
        their recorders and the pumps.
        """
        reactor = MemoryReactorClock()
        nodes = [makeNode(6001 + i, reactor, **config) for i in range(count)]
        recorders = []
        for node in nodes:
            recorders.append(Recorder())
            node.registerMessage("news", recorders[-1])
        pumps = [linkNodes(nodes[i], nodes[i + 1], reactor) for i in range(count - 1)]
        return nodes, recorders, pumps

    def test_aBroadcastTravelsTheWholeLineOnce(self):
        nodes, recorders, pumps = self.line(5)
        mid = nodes[0].broadcast({"type": "news", "n": 1})
        flush(pumps)
        self.assertEqual(mid, message_id({"type": "news", "n": 1}))
        self.assertEqual(recorders[0].got, [])  # not to itself
        for recorder in recorders[1:]:
            self.assertEqual(recorder.messages, [{"type": "news", "n": 1}])
        self.assertEqual(nodes[4].gossip.stats["delivered"], 1)
        # The same message again is the same message: nothing is sent.
        self.assertEqual(nodes[0].broadcast({"type": "news", "n": 1}), mid)
        flush(pumps)
        self.assertEqual(len(recorders[4].got), 1)

    def test_hopsBoundTheFlood(self):
        nodes, recorders, pumps = self.line(4)
        nodes[0].broadcast({"type": "news", "n": 2}, hops=2)
        flush(pumps)
        self.assertEqual([len(r.got) for r in recorders], [0, 1, 1, 0])
        self.assertRaises(ValueError, nodes[0].broadcast, {"type": "news"}, hops=0)
        self.assertRaises(ValueError, nodes[0].broadcast, {"type": "news"}, hops=256)

    def test_aReceivedHopCountIsLoweredToOurs(self):
        nodes, recorders, pumps = self.line(4, gossip_hops=2)
        # Node 1 gets hops=255 from a hand-played peer: it forwards with 1.
        hand = Inbound(nodes[1], "20.1.0.1", node_id="hand")
        receive(hand.wire, {"type": "news", "n": 3, "gossip": {"hops": 255}})
        flush(pumps)
        self.assertEqual([len(r.got) for r in recorders], [1, 1, 1, 0])

    def test_aCycleDeliversOnceAndCountsDuplicates(self):
        reactor = MemoryReactorClock()
        nodes = [makeNode(6001 + i, reactor) for i in range(3)]
        recorders = [Recorder() for _ in nodes]
        for node, recorder in zip(nodes, recorders):
            node.registerMessage("news", recorder)
        pumps = [
            linkNodes(nodes[0], nodes[1], reactor),
            linkNodes(nodes[1], nodes[2], reactor),
            linkNodes(nodes[2], nodes[0], reactor),
        ]
        nodes[0].broadcast({"type": "news", "n": 4})
        flush(pumps)
        self.assertEqual([len(r.got) for r in recorders], [0, 1, 1])
        # Three links, each carrying it both ways but for the first hop's
        # (never sent back to its sender): 2 duplicates, wherever they fall.
        self.assertEqual(sum(n.gossip.stats["duplicates"] for n in nodes), 2)

    def test_nodesThatDoNotHandleATypeDoNotRelayIt(self):
        nodes, recorders, pumps = self.line(3)
        nodes[1].unregisterMessage("news")
        nodes[0].broadcast({"type": "news", "n": 5})
        flush(pumps)
        self.assertEqual([len(r.got) for r in recorders], [0, 0, 0])

    def test_anInvalidGossipedMessageIsNotRelayed(self):
        nodes, recorders, pumps = self.line(3)
        nodes[1].registerMessage("news", recorders[1], validator=lambda m: m["n"] + 0 and None)
        nodes[0].broadcast({"type": "news", "n": "not a number"})
        flush(pumps)
        self.assertEqual([len(r.got) for r in recorders], [0, 0, 0])
        self.assertEqual(len(nodes[1].peers()), 1)  # 0 was closed for it, 2 stays

    def test_largePayloadsAreAnnouncedAndDownloadedOnce(self):
        nodes, recorders, pumps = self.line(4, gossip_push_max_bytes=100)
        message = {"type": "news", "text": "x" * 5000}
        nodes[0].broadcast(message)
        flush(pumps)
        for recorder in recorders[1:]:
            self.assertEqual(recorder.messages, [message])
        for node in nodes[1:]:
            self.assertEqual(node.gossip.stats["requested"], 1)
        self.assertEqual([n.gossip.stats["served"] for n in nodes], [1, 1, 1, 0])
        self.assertEqual(sum(n.gossip.stats["duplicates"] for n in nodes), 0)


class HandPlayedGossipTests(SynchronousTestCase):
    """
    The node against peers played by hand: what it sends, and what closes
    a connection.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.node = makeNode(6001, self.reactor, gossip_push_max_bytes=100)
        self.got = Recorder()
        self.node.registerMessage("blob", self.got)
        self.first = Inbound(self.node, "20.1.0.1", node_id="first")
        self.second = Inbound(self.node, "20.2.0.1", node_id="second")
        self.blob = {"type": "blob", "data": "y" * 500}
        self.mid = message_id(self.blob)

    def inv(self, hand, *items):
        receive(hand.wire, {"type": "inv", "items": list(items)})

    def test_anUnansweredRequestGoesToTheNextAnnouncer(self):
        self.inv(self.first, {"type": "blob", "id": self.mid})
        self.inv(self.second, {"type": "blob", "id": self.mid})
        self.assertEqual(sent(self.first.transport), [{"type": "getdata", "ids": [self.mid]}])
        self.assertEqual(sent(self.second.transport), [])
        self.reactor.advance(GETDATA_TIMEOUT_S)
        self.assertEqual(sent(self.second.transport), [{"type": "getdata", "ids": [self.mid]}])
        receive(self.second.wire, {**self.blob, "gossip": {"hops": 3}})
        self.assertEqual(self.got.got, [("second", self.blob)])
        # Not announced back to the first, which announced it to us.
        self.assertEqual(sent(self.first.transport), [])

    def test_notfoundMovesOnAtOnce(self):
        self.inv(self.first, {"type": "blob", "id": self.mid})
        self.inv(self.second, {"type": "blob", "id": self.mid})
        sent(self.first.transport)
        receive(self.first.wire, {"type": "notfound", "ids": [self.mid]})
        self.assertEqual(sent(self.second.transport), [{"type": "getdata", "ids": [self.mid]}])

    def test_onlyHandledTypesAndUnseenIdsAreRequested(self):
        other = message_id({"type": "other"})
        self.inv(self.first, {"type": "other", "id": other}, {"type": "blob", "id": self.mid})
        self.assertEqual(sent(self.first.transport), [{"type": "getdata", "ids": [self.mid]}])
        receive(self.first.wire, {**self.blob, "gossip": {"hops": 1}})
        self.inv(self.second, {"type": "blob", "id": self.mid})
        self.assertEqual(sent(self.second.transport), [])

    def test_announcedPayloadsAreServedOnceToThoseTheyWereAnnouncedTo(self):
        receive(self.first.wire, {**self.blob, "gossip": {"hops": 3}})
        self.assertEqual(
            sent(self.second.transport), [{"type": "inv", "items": [{"type": "blob", "id": self.mid}]}]
        )
        receive(self.second.wire, {"type": "getdata", "ids": [self.mid]})
        self.assertEqual(sent(self.second.transport), [{**self.blob, "gossip": {"hops": 2}}])
        receive(self.second.wire, {"type": "getdata", "ids": [self.mid]})
        self.assertEqual(sent(self.second.transport), [{"type": "notfound", "ids": [self.mid]}])
        # The first sent it to us: it was never announced to it.
        receive(self.first.wire, {"type": "getdata", "ids": [self.mid]})
        self.assertEqual(sent(self.first.transport), [{"type": "notfound", "ids": [self.mid]}])

    def test_malformedGossipIsAViolation(self):
        bad = [
            {"type": "blob", "gossip": {"hops": 0}},
            {"type": "blob", "gossip": {"hops": "3"}},
            {"type": "blob", "gossip": []},
            {"type": "inv", "items": [{"type": "blob", "id": "XYZ"}]},
            {"type": "inv", "items": [{"id": self.mid}]},
            {"type": "inv", "items": "all"},
            {"type": "inv", "items": [{"type": "blob", "id": self.mid}] * (MAX_INV_ITEMS + 1)},
            {"type": "getdata", "ids": [self.mid] * (MAX_INV_ITEMS + 1)},
            {"type": "notfound", "ids": [7]},
        ]
        for index, message in enumerate(bad):
            hand = Inbound(self.node, f"20.3.{index}.1", node_id=f"bad{index}")
            receive(hand.wire, message)
            self.assertIsInstance(hand.wire.peer.close_reason, ProtocolViolation, message)
        staying = {p.node_id for p in self.node.peers() if p.close_reason is None}
        self.assertEqual(staying, {"first", "second"})

    def test_aFloodingPeerIsRateLimitedNotDisconnected(self):
        node = makeNode(6009, self.reactor, gossip_rate_per_s=5)  # 50 at once, then 5 a second
        got = Recorder()
        node.registerMessage("blob", got)
        flooder = Inbound(node, "20.9.0.1", node_id="flooder")
        honest = Inbound(node, "20.8.0.1", node_id="honest")
        receive(flooder.wire, *({"type": "blob", "n": n, "gossip": {"hops": 1}} for n in range(80)))
        self.assertEqual(len(got.got), 50)
        self.assertEqual(node.gossip.stats["limited"], 30)
        receive(honest.wire, {"type": "blob", "n": "honest", "gossip": {"hops": 1}})
        self.assertEqual(got.got[-1], ("honest", {"type": "blob", "n": "honest"}))
        self.reactor.advance(2)  # 10 more tokens
        receive(flooder.wire, *({"type": "blob", "n": n, "gossip": {"hops": 1}} for n in range(100, 115)))
        self.assertEqual(len([g for g in got.got if g[0] == "flooder"]), 60)
        # Announced ids count too.
        receive(
            flooder.wire,
            {"type": "inv", "items": [{"type": "blob", "id": f"{n:064x}"} for n in range(20)]},
        )
        self.assertEqual(sent(flooder.transport), [])
        self.assertIsNone(flooder.wire.peer.close_reason)

    def test_stopCancelsTheDownloadTimers(self):
        self.inv(self.first, {"type": "blob", "id": self.mid})
        pending = len(self.reactor.getDelayedCalls())
        self.node.stopService()
        self.assertLess(len(self.reactor.getDelayedCalls()), pending)
        self.assertFalse(
            [c for c in self.reactor.getDelayedCalls() if "_timedOut" in repr(c.func)]
        )


class SeenCacheTests(SynchronousTestCase):
    def test_idsExpireAndTheCacheIsBounded(self):
        from twisted.internet.task import Clock

        clock = Clock()
        seen = SeenCache(clock, expiry_s=10, max_entries=3)
        for key in "abcd":
            seen.add(key)
        self.assertEqual(len(seen), 3)
        self.assertNotIn("a", seen)
        self.assertIn("d", seen)
        clock.advance(10)
        self.assertNotIn("d", seen)
        seen.add("e")
        self.assertEqual(len(seen), 1)

    def test_theIdIgnoresTheGossipFieldAndKeyOrder(self):
        self.assertEqual(
            message_id({"type": "t", "a": 1, "b": "é"}),
            message_id({"b": "é", "gossip": {"hops": 4}, "a": 1, "type": "t"}),
        )
        self.assertNotEqual(message_id({"type": "t", "a": 1}), message_id({"type": "t", "a": 2}))


class GossipNetworkTests(SynchronousTestCase):
    """
    The proof of C{bench/gossip.py} (whose C{run} this calls): 200 nodes in
    memory, each dialing 4 others at random; a broadcast from one of them.
    """

    def test_aBroadcastReachesAll200NodesOnceEach(self):
        import os
        import sys

        bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
        if bench not in sys.path:
            sys.path.insert(0, bench)
        import gossip

        small, large = gossip.run(nodes=200, degree=4, seed=1, large=20_000)
        for result in (small, large):
            self.assertEqual(result["reached"], 199, gossip.report(result))
            self.assertEqual(result["max_handled"], 1)
            self.assertLessEqual(result["max_received"], result["max_peers"])
        # Each node passes it on once, to all its peers but the one it came
        # from: the links (800, each counted from both ends) less N - 1.
        self.assertEqual(small["pushed"], round(small["mean_peers"] * 200) - 199)
        self.assertEqual(small["messages"], small["pushed"])
        # The large one is downloaded once by each node, announced instead.
        self.assertEqual(large["pushed"], 0)
        self.assertEqual(large["max_requested"], 1)
        self.assertEqual(large["served"], 199)
        self.assertEqual(large["max_received"], 1)
