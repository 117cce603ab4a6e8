"""
The Prometheus metrics moved to L{bitp2p.ops.metrics}; this old path
re-exports them.

It owns nothing: a re-export of L{bitp2p.ops.metrics}.
"""

from bitp2p.ops.metrics import *  # noqa: F401,F403
from bitp2p.ops.metrics import __all__  # noqa: F401
