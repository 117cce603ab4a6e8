"""
C{bitp2p-cli} moved to L{bitp2p.ops.cli}; this old path re-exports it (and
C{python -m bitp2p.cli} still runs it).

It owns nothing: a re-export of L{bitp2p.ops.cli}.
"""

import sys

from bitp2p.ops.cli import *  # noqa: F401,F403
from bitp2p.ops.cli import __all__ as _all
from bitp2p.ops.cli import (  # noqa: F401
    DEFAULT_RPC_PORT,
    TIMEOUT_S,
    main,
    printNetinfo,
    printPeers,
    printResult,
)

__all__ = sorted(
    {*_all, "DEFAULT_RPC_PORT", "TIMEOUT_S", "printNetinfo", "printPeers", "printResult"}
)

if __name__ == "__main__":
    sys.exit(main())
