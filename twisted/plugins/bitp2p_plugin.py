# Registers "twistd bitp2p". Only registration lives here; see bitp2p.ops.tap.
from twisted.application.service import ServiceMaker

bitp2p = ServiceMaker(
    "bitp2p",
    "bitp2p.ops.tap",
    "A Bitcoin-style peer-to-peer network node",
    "bitp2p",
)
