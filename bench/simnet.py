"""
The in-memory network on a simulated clock that the benchmarks run on, now
L{bitp2p.testing} (L{MemoryNetwork<bitp2p.testing.MemoryNetwork>},
L{MemoryHost<bitp2p.testing.MemoryHost>}); these are its old names, kept
for old imports.
"""

from __future__ import annotations

from bitp2p.testing import DEFAULT_LATENCY_S as LATENCY_S
from bitp2p.testing import MemoryHost as SimHost
from bitp2p.testing import MemoryNetwork as SimReactor

__all__ = ["LATENCY_S", "SimHost", "SimReactor"]
