"""
The version of bitp2p, in one place (setup.cfg reads it from here). It owns
that string and knows nothing else.
"""

__version__ = "0.1.0"
