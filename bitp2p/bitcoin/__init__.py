"""
The real Bitcoin P2P wire: what bitp2p needs to speak to Bitcoin nodes.

A second wire format behind the node's wire-format seam
(L{IWireFormat<bitp2p.interfaces.IWireFormat>}), beside the JSON lines of
L{bitp2p.wire}:

  - L{bitp2p.bitcoin.networks}: the Bitcoin networks (magic, default port,
    DNS seeds), from Bitcoin Core's chain parameters;
  - L{bitp2p.bitcoin.addrv2}: addresses of every network BIP 155 names, to
    and from their bytes;
  - L{bitp2p.bitcoin.codec}: the bytes of the 24-byte header and of each
    message bitp2p understands;
  - L{bitp2p.bitcoin.wire}: the framing protocol, which turns Bitcoin
    messages into the message dicts a L{Peer<bitp2p.peer.Peer>} handles;
  - L{bitp2p.bitcoin.crawl}: a crawler of a Bitcoin network.

It owns nothing but this list; the package knows nothing of the node.
"""
