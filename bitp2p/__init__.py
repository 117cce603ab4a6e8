"""
bitp2p: a Bitcoin-style peer-to-peer networking layer on Twisted.

The names most programs need are here: L{Node} and L{NodeConfig} to run a
node, L{Peer} for what a connection offers, L{MessageType} for what
C{Node.registerMessage} registers, and the errors of L{bitp2p.errors}. An
in-memory network of nodes for tests is in L{bitp2p.testing}.

It owns nothing but the package's public names (re-exported from the modules
that own them).
"""

from bitp2p._version import __version__
from bitp2p.errors import (
    ConnectFailed,
    DuplicateConnection,
    HandshakeFailed,
    HandshakeTimeout,
    LimitReached,
    NotRunning,
    PeerLost,
    ProtocolViolation,
    SelfConnection,
)
from bitp2p.node import MessageType, Node, NodeConfig
from bitp2p.peer import Direction, Peer

__all__ = [
    "ConnectFailed",
    "Direction",
    "DuplicateConnection",
    "HandshakeFailed",
    "HandshakeTimeout",
    "LimitReached",
    "MessageType",
    "Node",
    "NodeConfig",
    "NotRunning",
    "Peer",
    "PeerLost",
    "ProtocolViolation",
    "SelfConnection",
    "__version__",
]
