"""
C{twistd bitp2p}'s options and services moved to L{bitp2p.ops.tap}; this old
path re-exports them.

It owns nothing: a re-export of L{bitp2p.ops.tap}.
"""

from bitp2p.ops.tap import *  # noqa: F401,F403
from bitp2p.ops.tap import __all__  # noqa: F401
