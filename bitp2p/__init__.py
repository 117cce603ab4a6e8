"""
bitp2p: a Bitcoin-style peer-to-peer networking layer on Twisted.

The names most programs need are here: L{Node} and L{NodeConfig} to run a
node, L{Peer} for what a connection offers, and the errors of
L{bitp2p.errors}.
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
from bitp2p.node import Node, NodeConfig
from bitp2p.peer import Direction, Peer

__all__ = [
    "ConnectFailed",
    "Direction",
    "DuplicateConnection",
    "HandshakeFailed",
    "HandshakeTimeout",
    "LimitReached",
    "Node",
    "NodeConfig",
    "NotRunning",
    "Peer",
    "PeerLost",
    "ProtocolViolation",
    "SelfConnection",
    "__version__",
]
