"""
The web dashboard moved to L{bitp2p.ops.web}; this old path re-exports it.

It owns nothing: a re-export of L{bitp2p.ops.web}.
"""

from bitp2p.ops.web import *  # noqa: F401,F403
from bitp2p.ops.web import MAX_KNOWN  # noqa: F401

__all__ = [
    "MAX_KNOWN",
    "PAGE_CSP",
    "SECURITY_HEADERS",
    "STATIC_DIR",
    "StaticFile",
    "dashboardResource",
    "sameOrigin",
    "snapshot",
]
