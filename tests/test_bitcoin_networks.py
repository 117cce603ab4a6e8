"""
The Bitcoin networks table (L{bitp2p.bitcoin.networks}) against Bitcoin
Core's chain parameters.
"""

from __future__ import annotations

import hashlib

from twisted.trial.unittest import SynchronousTestCase

from bitp2p.bitcoin.networks import NETWORKS, Network, network

# Bitcoin Core's default signet challenge (src/kernel/chainparams.cpp).
SIGNET_CHALLENGE = bytes.fromhex(
    "512103ad5e0edad18cb1f0fc0d28a3d4f1f3e445640337489abb10404f2d1e086be43021"
    "0359ef5021964fe22d6f8e05b2463c9540ce96883fe3b278760f048f5189f2e6c452ae"
)


class NetworksTests(SynchronousTestCase):
    def test_names(self):
        self.assertEqual(list(NETWORKS), ["mainnet", "testnet4", "testnet3", "signet", "regtest"])
        for name, found in NETWORKS.items():
            self.assertIsInstance(found, Network)
            self.assertEqual(found.name, name)
            self.assertIs(network(name), found)

    def test_magicAndPorts(self):
        """
        Each network's message start, as on the wire, and default port.
        """
        expected = {
            "mainnet": ("f9beb4d9", 8333),
            "testnet4": ("1c163f28", 48333),
            "testnet3": ("0b110907", 18333),
            "signet": ("0a03cf40", 38333),
            "regtest": ("fabfb5da", 18444),
        }
        for name, (magic, port) in expected.items():
            self.assertEqual((network(name).magic.hex(), network(name).default_port), (magic, port))
            self.assertEqual(len(network(name).magic), 4)

    def test_signetMagicIsDerivedFromItsChallenge(self):
        """
        As Core computes it: the first 4 bytes of the double SHA-256 of the
        serialized challenge (its length, then the script).
        """
        data = bytes([len(SIGNET_CHALLENGE)]) + SIGNET_CHALLENGE
        digest = hashlib.sha256(hashlib.sha256(data).digest()).digest()
        self.assertEqual(network("signet").magic, digest[:4])

    def test_magicsAreDistinct(self):
        self.assertEqual(len({n.magic for n in NETWORKS.values()}), len(NETWORKS))

    def test_dnsSeeds(self):
        self.assertIn("seed.bitcoin.sipa.be.", network("mainnet").dns_seeds)
        self.assertEqual(len(network("mainnet").dns_seeds), 8)
        self.assertEqual(
            network("testnet4").dns_seeds,
            ("seed.testnet4.bitcoin.sprovoost.nl.", "seed.testnet4.wiz.biz."),
        )
        self.assertEqual(network("regtest").dns_seeds, ())
        for found in NETWORKS.values():
            self.assertIsInstance(found.dns_seeds, tuple)
            self.assertEqual(bool(found.dns_seeds), found.name != "regtest")
            for seed in found.dns_seeds:
                self.assertTrue(seed.endswith("."), seed)

    def test_frozen(self):
        with self.assertRaises(AttributeError):
            network("mainnet").default_port = 1  # type: ignore[misc]

    def test_unknownName(self):
        """
        One line, naming every valid name.
        """
        for bad in ("main", "testnet", "", None, 3):
            with self.assertRaises(ValueError) as caught:
                network(bad)  # type: ignore[arg-type]
            message = str(caught.exception)
            self.assertNotIn("\n", message)
            for name in NETWORKS:
                self.assertIn(name, message)
