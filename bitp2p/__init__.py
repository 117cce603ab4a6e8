"""
bitp2p: a Bitcoin-style peer-to-peer networking layer on Twisted.
"""

from bitp2p._version import __version__

__all__ = ["__version__"]
