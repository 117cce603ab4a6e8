"""
The interactive console moved to L{bitp2p.ops.console}; this old path
re-exports it.

It owns nothing: a re-export of L{bitp2p.ops.console}.
"""

from bitp2p.formatting import age  # noqa: F401 (the old module exported it)
from bitp2p.ops.console import *  # noqa: F401,F403

__all__ = [
    "Commands",
    "ConsoleService",
    "HELP",
    "PipeConsole",
    "TerminalConsole",
    "age",
    "formatLogLine",
    "prompt",
]
