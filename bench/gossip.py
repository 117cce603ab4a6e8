"""
Gossip on an in-memory network (bitp2p.testing): does a broadcast reach every
node, how many times does each node receive it, and what does the flood cost?

N nodes (200 by default), each dialing C{--degree} others at random (so each
has about twice that many peers), with automatic outbound connections off so
that the graph stays as built. One node broadcasts a small message (pushed),
then a large one (announced with inv, downloaded with getdata). Reported for
each: the nodes reached, the most times one node handled it (must be 1), the
most times one node received it against its number of peers, the messages
sent for it in all (against N - 1, the least a flood can cost) and the
simulated time until the last node had it.

Nothing is timed: the network runs on a simulated clock, seeded, and each run
gives the same figures.

    python bench/gossip.py [--nodes 200] [--degree 4] [--seed 1] [--large 20000]
"""

from __future__ import annotations

import argparse


def run(nodes: int = 200, degree: int = 4, seed: int = 1, large: int = 20_000) -> list[dict]:
    from bitp2p.testing import TestNetwork

    net = TestNetwork(seed=seed)
    members = net.addNodes(nodes, max_outbound=0)
    handled = {node.node_id: [] for node in members}
    for node in members:
        node.registerMessage(
            "news", lambda peer, message, got=handled[node.node_id]: got.append(net.network.now)
        )
    net.start()
    net.linkRandom(members, degree)
    net.advance(5)
    results = []
    origin = members[0]
    for label, text in (("small (pushed)", "x" * 100), ("large (inv/getdata)", "y" * large)):
        for got in handled.values():
            got.clear()
        before = {node.node_id: dict(node.gossip.stats) for node in members}
        lines, sent = net.network.messagesSent, net.network.bytesSent
        start = net.network.now
        origin.broadcast({"type": "news", "text": text})
        net.runUntil(
            lambda: all(handled[n.node_id] for n in members if n is not origin), timeout=120
        )
        net.advance(1)

        def delta(node, key):
            return node.gossip.stats[key] - before[node.node_id][key]

        others = [n for n in members if n is not origin]
        received = [delta(n, "received") for n in others]
        results.append(
            {
                "label": label,
                "nodes": nodes,
                "reached": sum(1 for n in others if handled[n.node_id]),
                "max_handled": max(len(handled[n.node_id]) for n in others),
                "max_received": max(received),
                "mean_received": sum(received) / len(received),
                "max_peers": max(len(n.peers()) for n in members),
                "mean_peers": sum(len(n.peers()) for n in members) / len(members),
                "pushed": sum(delta(n, "pushed") for n in members),
                "announced": sum(delta(n, "announced") for n in members),
                "requested": sum(delta(n, "requested") for n in members),
                "max_requested": max(delta(n, "requested") for n in others),
                "served": sum(delta(n, "served") for n in members),
                "messages": net.network.messagesSent - lines,
                "bytes": net.network.bytesSent - sent,
                "seconds": max(handled[n.node_id][0] for n in others if handled[n.node_id]) - start,
            }
        )
    net.stop()
    return results


def report(result: dict) -> str:
    return (
        f"{result['label']}: reached {result['reached']} of {result['nodes'] - 1}, "
        f"handled at most {result['max_handled']}x, received at most {result['max_received']}x "
        f"(mean {result['mean_received']:.1f}; peers mean {result['mean_peers']:.1f}, "
        f"max {result['max_peers']}); {result['messages']:,} messages "
        f"({result['pushed']:,} pushed, {result['announced']:,} inv, "
        f"{result['requested']:,} requested, {result['served']:,} served), "
        f"{result['bytes']:,} bytes, all reached in {result['seconds']:.2f} s simulated"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--degree", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--large", type=int, default=20_000, help="bytes of the large payload")
    args = parser.parse_args()
    for result in run(args.nodes, args.degree, args.seed, args.large):
        print(report(result))


if __name__ == "__main__":
    main()
