"""
Two bitp2p nodes in one program: one twisted.application Application, two
Node services, the second seeded with the first. Run it with::

    twistd -ny examples/twonodes/twonodes.py

Each node's service name is its own (C{bitp2p-node-<node id>}), so both
fit in one application; C{nodesOf(application)} finds them again.
"""

from twisted.application import service

from bitp2p import Node, NodeConfig


def twoNodes(portA: int = 5000, portB: int = 5001) -> service.Application:
    application = service.Application("two-nodes")
    a = Node(NodeConfig(port=portA, interface="127.0.0.1", seeds=()))
    b = Node(NodeConfig(port=portB, interface="127.0.0.1", seeds=[f"127.0.0.1:{portA}"]))
    a.setServiceParent(application)
    b.setServiceParent(application)
    return application


def nodesOf(application) -> list[Node]:
    return [s for s in service.IServiceCollection(application) if isinstance(s, Node)]


application = twoNodes()
