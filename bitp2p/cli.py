"""
C{bitp2p-cli} moved to L{bitp2p.ops.cli}; this old path re-exports it (and
C{python -m bitp2p.cli} still runs it).

It owns nothing: a re-export of L{bitp2p.ops.cli}.
"""

import sys

from bitp2p.ops.cli import *  # noqa: F401,F403
from bitp2p.ops.cli import (  # noqa: F401
    DEFAULT_RPC_PORT,
    TIMEOUT_S,
    main,
    printNetinfo,
    printPeers,
    printResult,
)

__all__ = [
    "CLIError",
    "DEFAULT_RPC_PORT",
    "TIMEOUT_S",
    "call",
    "main",
    "printNetinfo",
    "printPeers",
    "printResult",
]

if __name__ == "__main__":
    sys.exit(main())
