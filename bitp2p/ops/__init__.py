"""
The operator's tools around the node: everything a person or a monitoring
system uses to run, watch and steer a node, none of which the node needs.

  - L{bitp2p.ops.tap}: C{twistd bitp2p}'s options and the services they
    build (also behind C{python -m bitp2p});
  - L{bitp2p.ops.control}: the JSON-RPC control API (auth, methods, rpc,
    site, service);
  - L{bitp2p.ops.cli}: C{bitp2p-cli}, its client;
  - L{bitp2p.ops.web}: the dashboard (its files in C{dashboard/});
  - L{bitp2p.ops.metrics}: C{/metrics} for Prometheus;
  - L{bitp2p.ops.console}: the interactive console;
  - L{bitp2p.ops.uvloopreactor}: the reactors a node can run on besides
    Twisted's default (asyncio, uvloop).
  - L{bitp2p.ops.datadir}: the per-user default data directory of the
    daemon and the console, and how C{bitp2p-cli} finds a running node's.

They see the node through its public API and its read-only views
(L{bitp2p.views}); the core (node, peer, wire, address book, ...) must not
import anything from here. The old paths (C{bitp2p.control}, C{bitp2p.cli},
C{bitp2p.web}, C{bitp2p.metrics}, C{bitp2p.console}, C{bitp2p.tap}) still
import the same objects.

It owns nothing itself; its modules own the operator's tools, and must not
be imported by the core.
"""
