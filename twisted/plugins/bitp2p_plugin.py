# Registers "twistd bitp2p", "twistd bitp2p-lab" (bitp2p.ops.lab.tap) and the "uvloop" reactor (twistd --reactor uvloop:
# Twisted's asyncio reactor on uvloop). Only registration lives here; see
# bitp2p.ops.tap and bitp2p.ops.uvloopreactor.
from twisted.application.reactors import Reactor
from twisted.application.service import ServiceMaker

bitp2p = ServiceMaker(
    "bitp2p",
    "bitp2p.ops.tap",
    "A Bitcoin-style peer-to-peer network node",
    "bitp2p",
)

bitp2pLab = ServiceMaker(
    "bitp2p-lab",
    "bitp2p.ops.lab.tap",
    "A web page to start, connect and watch local bitp2p nodes",
    "bitp2p-lab",
)

uvloop = Reactor(
    "uvloop",
    "bitp2p.ops.uvloopreactor",
    "Twisted's asyncio reactor on a uvloop event loop (pip install 'bitp2p[uvloop]')",
)
