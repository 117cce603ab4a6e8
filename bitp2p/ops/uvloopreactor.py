"""
The reactors a node can run on besides Twisted's default: Twisted's asyncio
reactor on the standard asyncio event loop, or on a uvloop event loop
(C{pip install 'bitp2p[uvloop]'}).

L{install} is the installer of the C{uvloop} reactor that
C{twisted/plugins/bitp2p_plugin.py} registers, so that C{twistd --reactor
uvloop -n bitp2p} and C{twist --reactor uvloop bitp2p} run a node on it;
L{installReactor} is C{python -m bitp2p --reactor NAME}'s choice.

Why a reactor of its own rather than C{twistd --reactor asyncio} with
uvloop's policy installed by bitp2p's plugin file: twistd installs the
reactor named by C{--reactor} while it parses its own options, and imports
the plugin file of the sub-command only afterwards (checked with C{python -X
importtime}: C{twisted.internet.asyncioreactor} comes before
C{twisted.plugins.bitp2p_plugin}), so the event loop is already made by
then. A reactor plugin is imported when twistd looks the name up, which is
in time.

It is an option, never the default: measured with the benchmarks of
C{docs/benchmarks.rst} ("Running on asyncio and uvloop"), uvloop does not
make a node faster than Twisted's default epoll reactor (the same CPU per
message, 26 % more per handshake); it is faster than the standard asyncio
loop, for a node that has to run on asyncio.

This module owns the choice of the event loop and the one-line description
of the reactor a node runs on. It must not know the node, and must import
nothing that installs a reactor (it runs before the reactor exists).
"""

from __future__ import annotations

__all__ = ["REACTORS", "describeReactor", "install", "installReactor"]

REACTORS = ("default", "asyncio", "uvloop")

UVLOOP_MISSING = "uvloop is not installed (pip install 'bitp2p[uvloop]')"


def install() -> None:
    """
    Install Twisted's asyncio reactor on a new uvloop event loop, made the
    current event loop of this thread.

    @raise ImportError: when uvloop is not installed.
    @raise twisted.internet.error.ReactorAlreadyInstalledError: when a
        reactor is installed already.
    """
    try:
        import uvloop
    except ImportError:
        raise ImportError(UVLOOP_MISSING) from None
    _installAsyncio(uvloop.new_event_loop())


def _installAsyncio(loop) -> None:
    import asyncio

    from twisted.internet import asyncioreactor

    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)


def installReactor(name: str) -> None:
    """
    Install reactor C{name}, one of L{REACTORS}: C{default} leaves it to
    Twisted (epoll on Linux: nothing is installed here), C{asyncio} is
    Twisted's asyncio reactor on a new standard event loop, C{uvloop}
    L{install}. Call it before anything imports C{twisted.internet.reactor}.

    @raise ValueError: for a name not in L{REACTORS}.
    @raise ImportError: for C{uvloop} when uvloop is not installed.
    """
    if name not in REACTORS:
        raise ValueError(f"unknown reactor {name!r}: one of {', '.join(REACTORS)}")
    if name == "uvloop":
        install()
    elif name == "asyncio":
        import asyncio

        _installAsyncio(asyncio.new_event_loop())


def describeReactor(reactor) -> str:
    """
    What C{reactor} is, for the log: its class, and for an asyncio reactor
    the class of its event loop (C{"AsyncioSelectorReactor on uvloop.Loop"}).
    """
    text = type(reactor).__name__
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None:
        kind = type(loop)
        text += f" on {kind.__module__}.{kind.__qualname__}"
    return text
