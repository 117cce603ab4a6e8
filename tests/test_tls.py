"""
TLS node identity: key and certificate files, node ids, real TLS connections
on loopback, the refusal of plain text, and the trust-on-first-use pins.

The connection tests are trial TestCases run by the real reactor; they run
under trial and under pytest. Every wait is bounded by the class timeout.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import defer, reactor
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from bitp2p import tls
from bitp2p.tls import (
    CERT_FILE,
    KEY_FILE,
    MAX_PINS,
    TLS_RECORD_START,
    Identity,
    PinStore,
    looks_like_tls,
    node_id_of_certificate,
    node_id_of_public_key,
    peer_node_id,
)

from .helpers import tempDir

_HEX64 = re.compile(r"[0-9a-f]{64}")


def spkiHash(key) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def mode(path: str) -> int:
    return os.stat(path).st_mode & 0o777


class Recorder:
    """
    A log observer keeping the formatted events.
    """

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def logger(self) -> Logger:
        return Logger(observer=self)

    def texts(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events]


@functools.lru_cache(maxsize=None)
def sharedIdentity(name: str) -> Identity:
    """
    One identity per name for the whole run: tests that only use an
    identity need not each make one (trial has no C{setUpClass}).
    """
    return Identity.generate()


class NodeIdTests(TestCase):
    def setUp(self):
        self.a = sharedIdentity("a")
        self.b = sharedIdentity("b")

    def test_nodeIdIsTheSha256OfTheSubjectPublicKeyInfo(self):
        self.assertEqual(self.a.node_id, spkiHash(self.a.key))
        self.assertRegex(self.a.node_id, _HEX64)
        self.assertEqual(node_id_of_public_key(self.a.key.public_key()), self.a.node_id)

    def test_nodeIdIsAValidWireNodeId(self):
        from bitp2p import codec

        message = codec.version(self.a.node_id, 5000)
        self.assertEqual(message["node_id"], self.a.node_id)
        self.assertIsNotNone(tls._NODE_ID.fullmatch(self.a.node_id))

    def test_twoIdentitiesDiffer(self):
        self.assertNotEqual(self.a.node_id, self.b.node_id)
        self.assertNotEqual(
            self.a.certificate.serial_number, self.b.certificate.serial_number
        )

    def test_nodeIdOfEitherKindOfCertificate(self):
        from OpenSSL import crypto

        pem = self.a.certificate.public_bytes(serialization.Encoding.PEM)
        self.assertEqual(node_id_of_certificate(self.a.certificate), self.a.node_id)
        self.assertEqual(
            node_id_of_certificate(crypto.load_certificate(crypto.FILETYPE_PEM, pem)),
            self.a.node_id,
        )
        self.assertRaises(TypeError, node_id_of_certificate, pem)

    def test_certificateIsSelfSignedForACenturyNamingTheNodeId(self):
        cert = self.a.certificate
        [cn] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.assertEqual(cn.value, self.a.node_id)
        self.assertEqual(cert.issuer, cert.subject)
        cert.verify_directly_issued_by(cert)  # raises if the signature is wrong
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(cert.not_valid_before_utc, now - datetime.timedelta(hours=23))
        self.assertGreater(cert.not_valid_after_utc, now + datetime.timedelta(days=99 * 365))

    def test_certificateOfAnotherKeyIsRejected(self):
        self.assertRaises(ValueError, Identity, self.a.key, self.b.certificate)
        self.assertEqual(Identity(self.a.key, self.a.certificate).node_id, self.a.node_id)

    def test_looksLikeTLS(self):
        self.assertEqual(TLS_RECORD_START, 0x16)
        self.assertTrue(looks_like_tls(b"\x16\x03\x01\x02\x00"))
        self.assertFalse(looks_like_tls(b'{"type":"version"}\n'))
        self.assertFalse(looks_like_tls(b""))

    def test_peerNodeIdOfAPlainTransportIsNone(self):
        self.assertIsNone(peer_node_id(StringTransport()))
        self.assertIsNone(peer_node_id(None))

    def test_creatorsProvideTheirInterfaces(self):
        self.assertTrue(IOpenSSLServerConnectionCreator.providedBy(self.a.serverCreator()))
        self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(self.a.clientCreator()))
        self.assertIsInstance(self.a.wrapServerFactory(Factory()), TLSMemoryBIOFactory)
        self.assertIsInstance(self.a.wrapClientFactory(ClientFactory()), TLSMemoryBIOFactory)

    def test_contextRequiresTLS12AndAPeerCertificate(self):
        ctx = self.a.context()
        self.assertIs(self.a.context(), ctx)
        self.assertEqual(
            ctx.get_verify_mode(), SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        )
        # Both creators make connections of the one context.
        server = self.a.serverCreator().serverConnectionForTLS(None)
        client = self.a.clientCreator().clientConnectionForTLS(None)
        self.assertIs(server.get_context(), ctx)
        self.assertIs(client.get_context(), ctx)

    def test_aRefusedConnectionBuildsNoTLSProtocol(self):
        """
        A wrapped factory returning L{None} refuses the connection, as it
        would without TLS (a plain L{TLSMemoryBIOFactory} would wrap the
        L{None} and fail).
        """
        refusing = Factory()
        refusing.buildProtocol = lambda addr: None
        self.assertIsNone(self.a.wrapServerFactory(refusing).buildProtocol(None))
        self.assertIsNone(self.a.wrapClientFactory(refusing).buildProtocol(None))


class FileTests(TestCase):
    def setUp(self):
        self.dir = tempDir(self)
        self.keyPath = os.path.join(self.dir, KEY_FILE)
        self.certPath = os.path.join(self.dir, CERT_FILE)
        self.log = Recorder()

    def load(self, **kwargs) -> Identity:
        return Identity.load_or_create(self.dir, log=self.log.logger(), **kwargs)

    def test_loadOrCreateTwiceGivesTheSameIdentity(self):
        first = self.load()
        second = self.load()
        self.assertEqual(second.node_id, first.node_id)
        self.assertEqual(second.certificate, first.certificate)
        self.assertEqual(sorted(os.listdir(self.dir)), sorted([KEY_FILE, CERT_FILE]))

    def test_createsTheDirectory(self):
        path = os.path.join(self.dir, "a", "b")
        identity = Identity.load_or_create(path, log=self.log.logger())
        self.assertTrue(os.path.exists(os.path.join(path, KEY_FILE)))
        self.assertEqual(Identity.load_or_create(path).node_id, identity.node_id)

    def test_filesArePKCS8AndPEM(self):
        identity = self.load()
        with open(self.keyPath, "rb") as f:
            pem = f.read()
        self.assertTrue(pem.startswith(b"-----BEGIN PRIVATE KEY-----"))
        key = serialization.load_pem_private_key(pem, password=None)
        self.assertEqual(spkiHash(key), identity.node_id)
        with open(self.certPath, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(node_id_of_certificate(cert), identity.node_id)

    def test_keyFileIsMode0600(self):
        self.load()
        self.assertEqual(mode(self.keyPath), 0o600)

    def test_keyFileIsCreatedExclusivelyAs0600(self):
        """
        The key file is never readable by others, not even for an instant:
        it is created with mode 0600 (whatever the umask), exclusively,
        then renamed into place.
        """
        calls = []
        realOpen = os.open

        def recordingOpen(path, flags, mode=0o777, *args, **kwargs):
            calls.append((os.fspath(path), flags, mode))
            return realOpen(path, flags, mode, *args, **kwargs)

        self.patch(os, "open", recordingOpen)
        old = os.umask(0)
        self.addCleanup(os.umask, old)
        self.load()
        created = [
            (path, flags, mode)
            for path, flags, mode in calls
            if flags & os.O_CREAT and KEY_FILE in os.path.basename(path)
        ]
        self.assertEqual(len(created), 1)
        path, flags, createMode = created[0]
        self.assertNotEqual(path, self.keyPath)  # a temporary name
        self.assertTrue(flags & os.O_EXCL)
        self.assertEqual(createMode, 0o600)
        self.assertEqual(mode(self.keyPath), 0o600)

    def test_groupReadableKeyIsRestricted(self):
        first = self.load()
        os.chmod(self.keyPath, 0o644)
        again = self.load()
        self.assertEqual(again.node_id, first.node_id)
        self.assertEqual(mode(self.keyPath), 0o600)
        warnings = [t for t in self.log.texts() if "644" in t and "600" in t]
        self.assertEqual(len(warnings), 1, self.log.texts())

    def test_privateKeyIsNotRewrittenWhenItsModeIsRight(self):
        self.load()
        before = os.stat(self.keyPath)
        self.log.events.clear()
        self.load()
        after = os.stat(self.keyPath)
        self.assertEqual((after.st_ino, after.st_mtime_ns), (before.st_ino, before.st_mtime_ns))
        self.assertEqual(self.log.events, [])

    def test_damagedKeyIsSetAsideAndANewIdentityMade(self):
        with open(self.keyPath, "wb") as f:
            f.write(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n")
        identity = self.load(now=1700000000.5)
        aside = os.path.join(self.dir, KEY_FILE + ".damaged-1700000000")
        with open(aside, "rb") as f:
            self.assertEqual(f.read(), b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n")
        self.assertEqual(mode(self.keyPath), 0o600)
        self.assertEqual(self.load().node_id, identity.node_id)
        self.assertTrue(
            any("damaged" in t and aside in t for t in self.log.texts()), self.log.texts()
        )

    def test_damagedKeyTwiceInOneSecondKeepsBothCopies(self):
        for junk in (b"one", b"two"):
            with open(self.keyPath, "wb") as f:
                f.write(junk)
            self.load(now=1700000000)
        names = sorted(n for n in os.listdir(self.dir) if n.startswith(KEY_FILE + ".damaged-"))
        self.assertEqual(len(names), 2)
        contents = set()
        for name in names:
            with open(os.path.join(self.dir, name), "rb") as f:
                contents.add(f.read())
        self.assertEqual(contents, {b"one", b"two"})

    def test_keyOfAnotherKindIsSetAside(self):
        from cryptography.hazmat.primitives.asymmetric import ed25519

        other = ed25519.Ed25519PrivateKey.generate()
        with open(self.keyPath, "wb") as f:
            f.write(tls._keyPEM(other))
        identity = self.load(now=1700000000)
        self.assertTrue(os.path.exists(self.keyPath + ".damaged-1700000000"))
        self.assertNotEqual(identity.node_id, spkiHash(other))

    def test_missingCertificateIsRemadeWithTheSameNodeId(self):
        first = self.load()
        os.unlink(self.certPath)
        again = self.load()
        self.assertEqual(again.node_id, first.node_id)
        with open(self.certPath, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(node_id_of_certificate(cert), first.node_id)

    def test_damagedCertificateIsRemadeWithTheSameNodeId(self):
        first = self.load()
        with open(self.certPath, "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        again = self.load()
        self.assertEqual(again.node_id, first.node_id)
        self.assertNotEqual(again.certificate.serial_number, first.certificate.serial_number)
        self.assertEqual(self.load().certificate, again.certificate)  # and it was saved
        self.assertTrue(any("damaged" in t for t in self.log.texts()), self.log.texts())

    def test_certificateOfAnotherKeyIsRemade(self):
        first = self.load()
        other = Identity.generate()
        with open(self.certPath, "wb") as f:
            f.write(other.certificate.public_bytes(serialization.Encoding.PEM))
        again = self.load()
        self.assertEqual(again.node_id, first.node_id)
        self.assertEqual(node_id_of_certificate(again.certificate), first.node_id)
        with open(self.certPath, "rb") as f:
            saved = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(node_id_of_certificate(saved), first.node_id)
        self.assertTrue(
            any("not the certificate of this node's key" in t for t in self.log.texts()),
            self.log.texts(),
        )

    def test_unwritableCertificateStillGivesAnIdentity(self):
        first = self.load()
        os.unlink(self.certPath)
        os.mkdir(self.certPath)  # a directory cannot be replaced by a file
        again = self.load()
        self.assertEqual(again.node_id, first.node_id)
        self.assertTrue(any("Cannot" in t for t in self.log.texts()), self.log.texts())


# -- connections -------------------------------------------------------------


class Echo(Protocol):
    """
    Echoes what it receives; notes the peer's node id when data arrives.
    """

    def __init__(self) -> None:
        self.peerId: str | None = None
        self.received = b""
        self.made = False
        self.lost = defer.Deferred()

    def connectionMade(self) -> None:
        self.made = True

    def dataReceived(self, data: bytes) -> None:
        self.peerId = peer_node_id(self.transport)
        self.received += data
        self.transport.write(data)

    def connectionLost(self, reason) -> None:
        self.reason = reason
        self.lost.callback(None)


class Talker(Protocol):
    """
    Sends C{message} once connected; closes once it has all come back.
    """

    def __init__(self, message: bytes) -> None:
        self.message = message
        self.received = b""
        self.peerId: str | None = None
        self.lost = defer.Deferred()

    def connectionMade(self) -> None:
        self.host = self.transport.getHost()
        self.transport.write(self.message)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= len(self.message):
            self.peerId = peer_node_id(self.transport)
            self.transport.loseConnection()

    def connectionLost(self, reason) -> None:
        self.reason = reason
        self.lost.callback(None)


class Builds(Factory):
    """
    A factory keeping the protocols it builds.
    """

    def __init__(self, make) -> None:
        self.make = make
        self.built: list = []
        self.first: defer.Deferred = defer.Deferred()

    def buildProtocol(self, addr):
        protocol = self.make()
        protocol.factory = self
        self.built.append(protocol)
        if not self.first.called:
            self.first.callback(protocol)
        return protocol


class ClientBuilds(Builds, ClientFactory):
    """
    L{Builds}, as a client factory for C{connectTCP}.
    """


@implementer(IOpenSSLClientConnectionCreator)
class NoCertificateClient:
    """
    A TLS client that presents no certificate and accepts any.
    """

    def __init__(self) -> None:
        self.context = SSL.Context(SSL.TLS_METHOD)
        self.context.set_verify(SSL.VERIFY_PEER, lambda *args: True)

    def clientConnectionForTLS(self, tlsProtocol):
        return SSL.Connection(self.context, None)


class ConnectionTests(TestCase):
    timeout = 30

    def setUp(self):
        self.server = sharedIdentity("server")
        self.client = sharedIdentity("client")

    def listen(self, factory):
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port

    def connect(self, port, factory):
        connector = reactor.connectTCP("127.0.0.1", port.getHost().port, factory)
        self.addCleanup(connector.disconnect)
        return connector

    def captureLog(self) -> Recorder:
        recorder = Recorder()
        globalLogPublisher.addObserver(recorder)
        self.addCleanup(globalLogPublisher.removeObserver, recorder)
        return recorder

    @defer.inlineCallbacks
    def test_bothSidesSeeTheOthersNodeIdAndDataPasses(self):
        servers = Builds(Echo)
        port = self.listen(self.server.wrapServerFactory(servers))
        message = b'{"type":"version"}\n' + bytes(range(256)) * 100
        clients = ClientBuilds(lambda: Talker(message))
        self.connect(port, self.client.wrapClientFactory(clients))
        talker = yield clients.first
        yield talker.lost
        [echo] = servers.built
        yield echo.lost
        self.assertEqual(talker.received, message)
        self.assertEqual(echo.received, message)
        self.assertEqual(echo.peerId, self.client.node_id)
        self.assertEqual(talker.peerId, self.server.node_id)

    @defer.inlineCallbacks
    def test_plainTextClientIsRefusedWithOneLogLine(self):
        logged = self.captureLog()
        servers = Builds(Echo)
        port = self.listen(self.server.wrapServerFactory(servers))
        clients = ClientBuilds(lambda: Talker(b'{"type":"version"}\n'))
        self.connect(port, clients)
        talker = yield clients.first
        yield talker.lost
        [echo] = servers.built
        yield echo.lost
        self.assertTrue(echo.made)
        self.assertEqual(echo.received, b"")
        self.assertEqual(talker.received, b"")
        clientPort = talker.host.port
        refusals = [t for t in logged.texts() if "Refusing" in t]
        self.assertEqual(
            refusals,
            [
                f"Refusing plain-text connection from 127.0.0.1:{clientPort}: "
                "this node requires TLS (--tls)"
            ],
        )

    @defer.inlineCallbacks
    def test_clientWithoutACertificateIsRefused(self):
        servers = Builds(Echo)
        port = self.listen(self.server.wrapServerFactory(servers))
        clients = ClientBuilds(lambda: Talker(b"hello"))
        self.connect(port, TLSMemoryBIOFactory(NoCertificateClient(), True, clients))
        talker = yield clients.first
        yield talker.lost
        [echo] = servers.built
        yield echo.lost
        self.assertEqual(echo.received, b"")
        self.assertIsNone(echo.peerId)
        self.assertTrue(echo.reason.check(SSL.Error), echo.reason)


class PlainTextDetectionTests(TestCase):
    """
    The first byte decides, in memory.
    """

    def setUp(self):
        self.identity = Identity.generate()
        self.logged = Recorder()
        globalLogPublisher.addObserver(self.logged)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged)

    def connect(self):
        from twisted.internet.address import IPv6Address

        servers = Builds(Echo)
        protocol = self.identity.wrapServerFactory(servers).buildProtocol(None)
        transport = StringTransport(peerAddress=IPv6Address("TCP", "::1", 5000))
        protocol.makeConnection(transport)
        [echo] = servers.built
        return protocol, transport, echo

    def test_binaryGarbageIsRefusedAsNotTLS(self):
        protocol, transport, echo = self.connect()
        protocol.dataReceived(b"\x00\x01\x02")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        [line] = [t for t in self.logged.texts() if "Refusing" in t]
        self.assertEqual(
            line,
            "Refusing connection from [::1]:5000: not TLS (first byte 0x00); "
            "this node requires TLS (--tls)",
        )

    def test_tlsStartPassesAndTheHandshakeProceeds(self):
        protocol, transport, echo = self.connect()
        client = SSL.Connection(Identity.generate().context(), None)
        client.set_connect_state()
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        hello = client.bio_read(65536)
        # One byte at a time: the decision is made on the first byte only.
        for i in range(len(hello)):
            protocol.dataReceived(hello[i : i + 1])
        self.assertFalse(transport.disconnecting)
        self.assertTrue(looks_like_tls(transport.value()))  # the ServerHello
        self.assertEqual([t for t in self.logged.texts() if "Refusing" in t], [])


# -- pins --------------------------------------------------------------------

A = "a" * 64
B = "b" * 64
C = "c" * 64


class PinStoreTests(TestCase):
    def test_firstUsePinsAndAMatchIsAccepted(self):
        pins = PinStore()
        self.assertIsNone(pins.check("127.0.0.1:5001", A))
        self.assertEqual(pins.get("127.0.0.1:5001"), A)
        self.assertEqual(len(pins), 1)
        self.assertIsNone(pins.check("127.0.0.1:5001", A))
        self.assertEqual(pins.items(), [("127.0.0.1:5001", A)])

    def test_aMismatchGivesTheReasonAndKeepsThePin(self):
        pins = PinStore()
        pins.check("127.0.0.1:5001", "3f9c0a12" + "0" * 56)
        reason = pins.check("127.0.0.1:5001", "ab12cd34" + "0" * 56)
        self.assertEqual(reason, "127.0.0.1:5001 is pinned to node 3f9c0a12..., not ab12cd34...")
        self.assertEqual(pins.get("127.0.0.1:5001"), "3f9c0a12" + "0" * 56)

    def test_mismatchOfIdsWithACommonPrefixShowsThemWhole(self):
        pins = PinStore()
        pins.pin("h:1", "abcdefgh1")
        self.assertEqual(
            pins.check("h:1", "abcdefgh2"), "h:1 is pinned to node abcdefgh1, not abcdefgh2"
        )
        self.assertEqual(pins.check("h:1", "xy"), "h:1 is pinned to node abcdefgh..., not xy")

    def test_unpinForgets(self):
        pins = PinStore()
        pins.check("h:1", A)
        self.assertTrue(pins.unpin("h:1"))
        self.assertFalse(pins.unpin("h:1"))
        self.assertIsNone(pins.get("h:1"))
        self.assertIsNone(pins.check("h:1", B))  # a new first use
        self.assertEqual(pins.get("h:1"), B)

    def test_pinReplaces(self):
        pins = PinStore()
        pins.pin("h:1", A)
        pins.pin("h:1", B)
        self.assertEqual(pins.items(), [("h:1", B)])

    def test_invalidPinsAreRefused(self):
        pins = PinStore()
        self.assertRaises(ValueError, pins.pin, "h:1", "not valid!")
        self.assertRaises(ValueError, pins.pin, "h:1", "x" * 65)
        self.assertRaises(ValueError, pins.pin, "h:1", "")
        self.assertRaises(ValueError, pins.pin, "", A)
        self.assertRaises(ValueError, pins.pin, 5, A)
        self.assertRaises(ValueError, PinStore, 0)
        self.assertEqual(len(pins), 0)

    def test_boundedDroppingTheLeastRecentlyConfirmed(self):
        self.assertEqual(MAX_PINS, 10_000)
        self.assertEqual(PinStore().max_pins, MAX_PINS)
        pins = PinStore(max_pins=3)
        for address, node_id in (("h:1", A), ("h:2", B), ("h:3", C)):
            pins.check(address, node_id)
        self.assertIsNone(pins.check("h:1", A))  # confirmed: now the most recent
        pins.get("h:2")  # a look is not a confirmation
        self.assertIsNotNone(pins.check("h:3", A))  # a mismatch is not one either
        pins.check("h:4", A)
        self.assertEqual(pins.items(), [("h:3", C), ("h:1", A), ("h:4", A)])
        pins.pin("h:5", B)
        self.assertEqual([a for a, _ in pins.items()], ["h:1", "h:4", "h:5"])
        self.assertEqual(len(pins), 3)

    def test_jsonRoundTripKeepsPinsAndTheirOrder(self):
        pins = PinStore()
        pins.check("h:1", A)
        pins.check("[::1]:2", B)
        pins.check("h:3", C)
        pins.check("h:1", A)
        body = pins.to_json()
        import json

        again = PinStore.from_json(json.loads(json.dumps(body)))
        self.assertEqual(again.items(), [("[::1]:2", B), ("h:3", C), ("h:1", A)])
        self.assertEqual(again.to_json(), body)

    def test_fromJsonKeepsTheMostRecentWhenThereAreTooMany(self):
        body = {"pins": [{"address": f"h:{n}", "node_id": A} for n in range(5)]}
        pins = PinStore.from_json(body, max_pins=2)
        self.assertEqual([a for a, _ in pins.items()], ["h:3", "h:4"])

    def test_fromJsonSkipsBadNodeIds(self):
        body = {
            "pins": [
                {"address": "h:1", "node_id": "has space"},
                {"address": "h:2", "node_id": "x" * 65},
                {"address": "h:3", "node_id": ""},
                {"address": "h:4", "node_id": A},
            ]
        }
        self.assertEqual(PinStore.from_json(body).items(), [("h:4", A)])

    def test_fromJsonRefusesMalformedDocuments(self):
        for body in (
            None,
            [],
            "pins",
            {},
            {"pins": None},
            {"pins": {"h:1": A}},
            {"pins": ["h:1"]},
            {"pins": [{"node_id": A}]},
            {"pins": [{"address": 5, "node_id": A}]},
            {"pins": [{"address": "", "node_id": A}]},
            {"pins": [{"address": "h:1"}]},
            {"pins": [{"address": "h:1", "node_id": 7}]},
            {"pins": [{"address": "h\n1", "node_id": A}]},
        ):
            try:
                PinStore.from_json(body)
            except ValueError as e:
                self.assertTrue(str(e))
                self.assertNotIn("\n", str(e))
            else:
                self.fail(f"accepted {body!r}")
