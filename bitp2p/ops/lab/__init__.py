"""
The lab: one page on loopback from which a person starts, stops, kills and
connects local nodes and watches the whole local network at once (GitHub
issue 19).

L{service} holds the nodes (real L{Node<bitp2p.node.Node>}s in this
process); L{web} is the page and its JSON API; L{tap} is the command line
(C{bitp2p lab}, C{twistd bitp2p-lab}). Like every operator tool, it sees the
nodes only through their public API and L{bitp2p.views}.
"""
