"""
The web dashboard moved to L{bitp2p.ops.web}; this old path re-exports it.

It owns nothing: a re-export of L{bitp2p.ops.web}.
"""

from bitp2p.ops.web import *  # noqa: F401,F403
from bitp2p.ops import web as _moved
from bitp2p.ops.web import MAX_KNOWN  # noqa: F401

__all__ = ["MAX_KNOWN", *_moved.__all__]
