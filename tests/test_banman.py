"""
Bans and discouragement: targets and their normalisation, subnet matching,
expiry, unbanning, discouragement, and persistence.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from bitp2p import banman as banmanModule
from bitp2p.banman import BanError, BanMan

NOW = 1_800_000_000.0
DAY = 86400.0


class TargetTests(SynchronousTestCase):
    def test_singleAddressIsAFullLengthSubnet(self):
        b = BanMan()
        self.assertEqual(b.ban("10.1.2.3", NOW + DAY), "10.1.2.3/32")
        self.assertEqual(b.ban("2001:db8::1", NOW + DAY), "2001:db8::1/128")
        self.assertEqual(b.ban("[2001:db8::2]", NOW + DAY), "2001:db8::2/128")
        self.assertEqual(b.ban("2001:0db8:0000::0003", NOW + DAY), "2001:db8::3/128")

    def test_ipv4MappedBecomesIPv4(self):
        b = BanMan()
        self.assertEqual(b.ban("::ffff:10.1.2.3", NOW + DAY), "10.1.2.3/32")
        self.assertEqual(b.ban("[::ffff:10.9.0.0]/112", NOW + DAY), "10.9.0.0/16")
        self.assertEqual(
            b.bans(NOW), [("10.1.2.3/32", NOW + DAY), ("10.9.0.0/16", NOW + DAY)]
        )

    def test_subnetHostBitsAreCleared(self):
        b = BanMan()
        self.assertEqual(b.ban("10.1.0.0/16", NOW + DAY), "10.1.0.0/16")
        self.assertEqual(b.ban("10.2.3.4/16", NOW + DAY), "10.2.0.0/16")
        self.assertEqual(b.ban("2001:db8:1:2::5/32", NOW + DAY), "2001:db8::/32")
        self.assertEqual(b.ban("[2001:db9::]/48", NOW + DAY), "2001:db9::/48")
        self.assertEqual(b.ban("10.3.0.1/32", NOW + DAY), "10.3.0.1/32")

    def test_badTargetsAreRefused(self):
        b = BanMan()
        for bad in (
            "", "example.com", "10.0.0.256", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/",
            "/8", "10.0.0.0/8/9", "10.0.0.0/x", "10.0.0.0/-1", "1.2.3.4:5000",
            "[2001:db8::1]:5000", "[10.0.0.1]", "[2001:db8::1", None, 167772161, b"10.0.0.1",
        ):
            with self.assertRaises(BanError) as caught:
                b.ban(bad, NOW + DAY)
            message = str(caught.exception)
            self.assertNotIn("\n", message)
            self.assertIn("not an IP address or subnet", message)
            self.assertIn(repr(bad), message)
        self.assertEqual(b.bans(NOW), [])

    def test_longTargetIsShortenedInTheMessage(self):
        with self.assertRaises(BanError) as caught:
            BanMan().ban("x" * 10_000, NOW + DAY)
        self.assertLess(len(str(caught.exception)), 200)

    def test_badExpiryIsRefused(self):
        b = BanMan()
        for bad in (None, "tomorrow", True, float("nan"), float("inf")):
            self.assertRaises(BanError, b.ban, "10.0.0.1", bad)
            self.assertRaises(BanError, b.discourage, "10.0.0.1", bad)
        self.assertEqual(b.bans(NOW), [])
        self.assertFalse(b.is_discouraged("10.0.0.1", NOW))

    def test_banErrorIsAValueError(self):
        self.assertTrue(issubclass(BanError, ValueError))


class MatchingTests(SynchronousTestCase):
    def test_nothingBanned(self):
        b = BanMan()
        self.assertFalse(b.is_banned("10.0.0.1", NOW))
        self.assertFalse(b.is_banned("2001:db8::1", NOW))

    def test_singleAddress(self):
        b = BanMan()
        b.ban("10.1.2.3", NOW + DAY)
        self.assertTrue(b.is_banned("10.1.2.3", NOW))
        self.assertFalse(b.is_banned("10.1.2.4", NOW))
        self.assertFalse(b.is_banned("10.1.2.2", NOW))

    def test_ipv4Subnet(self):
        b = BanMan()
        b.ban("10.1.0.0/16", NOW + DAY)
        for host in ("10.1.0.0", "10.1.0.1", "10.1.200.7", "10.1.255.255"):
            self.assertTrue(b.is_banned(host, NOW), host)
        for host in ("10.0.255.255", "10.2.0.0", "11.1.0.1", "::a01:1"):
            self.assertFalse(b.is_banned(host, NOW), host)

    def test_ipv6Subnet(self):
        b = BanMan()
        b.ban("2001:db8::/32", NOW + DAY)
        b.ban("2001:db9::1", NOW + DAY)
        for host in ("2001:db8::", "2001:db8::1", "2001:db8:ffff:1::9", "2001:db9::1"):
            self.assertTrue(b.is_banned(host, NOW), host)
        for host in ("2001:db7:ffff::1", "2001:db9::2", "32.1.13.184"):
            self.assertFalse(b.is_banned(host, NOW), host)

    def test_ipv4MappedHostMatchesIPv4Ban(self):
        b = BanMan()
        b.ban("10.1.2.3", NOW + DAY)
        b.ban("192.168.0.0/16", NOW + DAY)
        self.assertTrue(b.is_banned("::ffff:10.1.2.3", NOW))
        self.assertTrue(b.is_banned("::ffff:192.168.7.7", NOW))
        self.assertFalse(b.is_banned("::ffff:10.1.2.4", NOW))

    def test_mappedBanMatchesIPv4Host(self):
        b = BanMan()
        b.ban("::ffff:10.1.2.3", NOW + DAY)
        self.assertTrue(b.is_banned("10.1.2.3", NOW))

    def test_zoneIsIgnored(self):
        b = BanMan()
        b.ban("fe80::1", NOW + DAY)
        self.assertTrue(b.is_banned("fe80::1%eth0", NOW))

    def test_nonIPHostIsNeverBanned(self):
        b = BanMan()
        b.ban("0.0.0.0/0", NOW + DAY)
        b.ban("::/0", NOW + DAY)
        self.assertTrue(b.is_banned("203.0.113.9", NOW))
        self.assertTrue(b.is_banned("2001:db8::1", NOW))
        for host in ("/tmp/node.sock", "", "localhost", "example.com", "[2001:db8::1]", "[2001:db8::1]:5000"):
            self.assertFalse(b.is_banned(host, NOW), host)

    def test_manyBans(self):
        b = BanMan()
        for i in range(200):
            b.ban(f"10.{i}.0.0/16", NOW + DAY)
            b.ban(f"172.16.0.{i}", NOW + DAY)
        self.assertTrue(b.is_banned("10.199.3.4", NOW))
        self.assertTrue(b.is_banned("172.16.0.199", NOW))
        self.assertFalse(b.is_banned("10.200.3.4", NOW))
        self.assertFalse(b.is_banned("172.16.0.200", NOW))


class ExpiryTests(SynchronousTestCase):
    def test_banEndsAtUntil(self):
        b = BanMan()
        b.ban("10.1.0.0/16", NOW + 10)
        b.ban("10.2.0.1", NOW + 10)
        for host in ("10.1.0.1", "10.2.0.1"):
            self.assertTrue(b.is_banned(host, NOW + 9.9))
            self.assertFalse(b.is_banned(host, NOW + 10))
            self.assertFalse(b.is_banned(host, NOW + 1000))
        self.assertEqual(len(b.bans(NOW)), 2)
        self.assertEqual(b.bans(NOW + 10), [])

    def test_banInThePastHasNoEffect(self):
        b = BanMan()
        self.assertEqual(b.ban("10.0.0.1", NOW - 1), "10.0.0.1/32")
        self.assertFalse(b.is_banned("10.0.0.1", NOW))
        self.assertEqual(b.bans(NOW), [])

    def test_laterBanReplacesExpiry(self):
        b = BanMan()
        b.ban("10.1.0.0/16", NOW + 10)
        b.ban("10.1.2.3/16", NOW + 100)
        self.assertTrue(b.is_banned("10.1.0.1", NOW + 50))
        self.assertEqual(b.bans(NOW), [("10.1.0.0/16", NOW + 100)])
        # Replacing means shortening too.
        b.ban("10.1.0.0/16", NOW + 5)
        self.assertFalse(b.is_banned("10.1.0.1", NOW + 50))
        b.ban("10.9.9.9", NOW + 100)
        b.ban("::ffff:10.9.9.9", NOW + 5)
        self.assertEqual(b.bans(NOW), [("10.1.0.0/16", NOW + 5), ("10.9.9.9/32", NOW + 5)])

    def test_narrowerBanOutlivesWider(self):
        b = BanMan()
        b.ban("10.0.0.0/8", NOW + 10)
        b.ban("10.1.2.3", NOW + 100)
        self.assertTrue(b.is_banned("10.5.0.1", NOW + 5))
        self.assertFalse(b.is_banned("10.5.0.1", NOW + 50))
        self.assertTrue(b.is_banned("10.1.2.3", NOW + 50))

    def test_sweepForgetsExpiredBans(self):
        b = BanMan()
        b.ban("10.1.0.0/16", NOW + 10)
        b.ban("10.2.0.1", NOW + 10)
        b.ban("10.3.0.1", NOW + 100)
        b.sweep(NOW + 10)
        self.assertFalse(b.unban("10.1.0.0/16"))
        self.assertFalse(b.unban("10.2.0.1"))
        self.assertEqual(b.bans(NOW), [("10.3.0.1/32", NOW + 100)])
        self.assertTrue(b.is_banned("10.3.0.1", NOW + 50))

    def test_bansAreSorted(self):
        b = BanMan()
        for target in ("2001:db8::1", "10.0.0.0/8", "9.0.0.0/8", "10.0.0.5", "::1", "10.0.0.0/16"):
            b.ban(target, NOW + DAY)
        self.assertEqual(
            [subnet for subnet, _ in b.bans(NOW)],
            ["9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "10.0.0.5/32", "::1/128", "2001:db8::1/128"],
        )


class UnbanTests(SynchronousTestCase):
    def test_unbanExactSubnet(self):
        b = BanMan()
        b.ban("10.1.0.0/16", NOW + DAY)
        b.ban("10.2.0.1", NOW + DAY)
        self.assertTrue(b.unban("10.1.99.99/16"))
        self.assertFalse(b.is_banned("10.1.0.1", NOW))
        self.assertTrue(b.unban("::ffff:10.2.0.1"))
        self.assertFalse(b.is_banned("10.2.0.1", NOW))
        self.assertEqual(b.bans(NOW), [])

    def test_unbanUnknownOrOtherSubnet(self):
        b = BanMan()
        b.ban("10.1.0.0/16", NOW + DAY)
        self.assertFalse(b.unban("10.1.0.0/24"))
        self.assertFalse(b.unban("10.1.0.1"))
        self.assertFalse(b.unban("10.0.0.0/8"))
        self.assertTrue(b.is_banned("10.1.0.1", NOW))

    def test_unbanBadTarget(self):
        self.assertRaises(BanError, BanMan().unban, "nonsense")


class DiscouragementTests(SynchronousTestCase):
    def test_discourageUntil(self):
        b = BanMan()
        self.assertFalse(b.is_discouraged("10.0.0.1", NOW))
        b.discourage("10.0.0.1", NOW + DAY)
        self.assertTrue(b.is_discouraged("10.0.0.1", NOW))
        self.assertTrue(b.is_discouraged("::ffff:10.0.0.1", NOW))
        self.assertFalse(b.is_discouraged("10.0.0.2", NOW))
        self.assertFalse(b.is_discouraged("10.0.0.1", NOW + DAY))

    def test_independentOfBans(self):
        b = BanMan()
        b.discourage("10.0.0.1", NOW + DAY)
        b.ban("10.0.0.2", NOW + DAY)
        self.assertFalse(b.is_banned("10.0.0.1", NOW))
        self.assertFalse(b.is_discouraged("10.0.0.2", NOW))
        self.assertEqual(b.bans(NOW), [("10.0.0.2/32", NOW + DAY)])
        self.assertTrue(b.unban("10.0.0.2"))
        self.assertFalse(b.unban("10.0.0.1"))
        self.assertTrue(b.is_discouraged("10.0.0.1", NOW))

    def test_laterTimeWins(self):
        b = BanMan()
        b.discourage("10.0.0.1", NOW + 100)
        b.discourage("10.0.0.1", NOW + 10)
        self.assertTrue(b.is_discouraged("10.0.0.1", NOW + 50))
        b.discourage("10.0.0.1", NOW + 200)
        self.assertTrue(b.is_discouraged("10.0.0.1", NOW + 150))

    def test_nonIPHostIsIgnored(self):
        b = BanMan()
        b.discourage("/tmp/node.sock", NOW + DAY)
        self.assertFalse(b.is_discouraged("/tmp/node.sock", NOW))

    def test_sweepForgetsExpired(self):
        b = BanMan()
        b.discourage("10.0.0.1", NOW + 10)
        b.discourage("10.0.0.2", NOW + 100)
        b.sweep(NOW + 10)
        self.assertEqual(len(b._discouraged), 1)
        self.assertTrue(b.is_discouraged("10.0.0.2", NOW + 50))

    def test_bounded(self):
        self.patch(banmanModule, "MAX_DISCOURAGED", 3)
        b = BanMan()
        for i in range(1, 5):
            b.discourage(f"10.0.0.{i}", NOW + DAY)
        self.assertFalse(b.is_discouraged("10.0.0.1", NOW))
        self.assertTrue(all(b.is_discouraged(f"10.0.0.{i}", NOW) for i in (2, 3, 4)))
        # Discouraging again makes a host the newest.
        b.discourage("10.0.0.2", NOW + DAY)
        b.discourage("10.0.0.5", NOW + DAY)
        self.assertFalse(b.is_discouraged("10.0.0.3", NOW))
        self.assertTrue(all(b.is_discouraged(f"10.0.0.{i}", NOW) for i in (2, 4, 5)))

    def test_neverPersisted(self):
        b = BanMan()
        b.discourage("10.0.0.1", NOW + DAY)
        self.assertEqual(b.to_json(NOW), {"bans": []})
        self.assertFalse(BanMan.from_json(b.to_json(NOW), NOW).is_discouraged("10.0.0.1", NOW))


class PersistenceTests(SynchronousTestCase):
    def test_format(self):
        b = BanMan()
        b.ban("10.0.0.0/8", NOW + DAY)
        b.ban("2001:db8::1", NOW + 2 * DAY)
        b.ban("10.9.9.9", NOW - 1)
        self.assertEqual(
            b.to_json(NOW),
            {
                "bans": [
                    {"subnet": "10.0.0.0/8", "until": NOW + DAY},
                    {"subnet": "2001:db8::1/128", "until": NOW + 2 * DAY},
                ]
            },
        )

    def test_roundTrip(self):
        b = BanMan()
        b.ban("10.0.0.0/8", NOW + DAY)
        b.ban("192.168.1.7", NOW + 2 * DAY)
        b.ban("2001:db8::/32", NOW + 3 * DAY)
        b.ban("2001:db9::1", NOW + 4 * DAY)
        again = BanMan.from_json(json.loads(json.dumps(b.to_json(NOW))), NOW)
        self.assertEqual(again.bans(NOW), b.bans(NOW))
        for host in ("10.1.1.1", "192.168.1.7", "2001:db8::5", "2001:db9::1"):
            self.assertTrue(again.is_banned(host, NOW), host)
        self.assertFalse(again.is_banned("192.168.1.8", NOW))

    def test_structurallyWrongDataIsRefused(self):
        for bad in (None, [], "bans", {}, {"bans": None}, {"bans": {}}, {"bans": "10.0.0.1"}):
            self.assertRaises(BanError, BanMan.from_json, bad, NOW)

    def test_badAndExpiredEntriesAreSkipped(self):
        data = {
            "bans": [
                "10.0.0.1",
                {"subnet": "nonsense", "until": NOW + DAY},
                {"subnet": "10.0.0.2"},
                {"until": NOW + DAY},
                {"subnet": "10.0.0.3", "until": "tomorrow"},
                {"subnet": "10.0.0.4", "until": True},
                {"subnet": "10.0.0.5", "until": NOW - 1},
                {"subnet": "10.0.0.6", "until": NOW},
                {"subnet": 167772167, "until": NOW + DAY},
                {"subnet": ["10.0.0.8"], "until": NOW + DAY},
                {"subnet": "10.0.0.9", "until": NOW + DAY},
                {"subnet": "10.1.2.3/16", "until": int(NOW) + 60},
            ]
        }
        restored = BanMan.from_json(data, NOW)
        self.assertEqual(restored.bans(NOW), [("10.0.0.9/32", NOW + DAY), ("10.1.0.0/16", NOW + 60)])
        self.assertIsInstance(restored.bans(NOW)[1][1], float)
        self.assertTrue(restored.is_banned("10.1.5.5", NOW))
