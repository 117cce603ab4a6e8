"""
The control API moved to L{bitp2p.ops.control} (split into auth, methods,
rpc, site and service); this old path re-exports its public names.

It owns nothing: a re-export of L{bitp2p.ops.control}.
"""

from bitp2p.ops.control import *  # noqa: F401,F403
from bitp2p.ops.control import __all__  # noqa: F401
