"""
TLS node identity: each node has an ECDSA P-256 key pair and a self-signed
certificate, and its node id is the SHA-256 of its public key.

A node id is C{sha256(SubjectPublicKeyInfo DER).hexdigest()}: 64 lowercase
hex characters, which the wire protocol accepts as a node id (1 to 64
characters of C{[A-Za-z0-9_-]}). Certificates are not checked against any
authority: self-signed is the norm, and the TLS layer accepts any
certificate. What TLS does prove is that the peer holds the private key of
the certificate it presented, so L{peer_node_id} of a connection is a node id
the peer cannot fake; the layer above compares it with the node id the peer
claims in its C{version} message.

Files in the data directory (L{Identity.load_or_create})::

    DIR/node.key   the private key: PEM, PKCS#8, unencrypted, mode 0600
    DIR/node.crt   the certificate: PEM; remade from the key when missing,
                   damaged or not matching, so the node id never changes

The key file is created under a temporary name with mode 0600 (never
readable by others, not even for an instant), fsynced, then renamed into
place. A key file that cannot be parsed is moved aside
(C{node.key.damaged-<unix time>}) with a warning and a new identity is made;
a key file readable by the group or others is restricted to 0600 with a
warning.

Connections: L{Identity.wrapServerFactory} and L{Identity.wrapClientFactory}
wrap an ordinary factory in a L{TLSMemoryBIOFactory} whose TLS connections
(TLS 1.2 at least) present our certificate and require one from the peer.
The server side also refuses, with one clear log line, a peer that speaks
plain text instead of TLS (a TLS connection starts with the byte
L{TLS_RECORD_START}; a plain-text bitp2p one with C{"{"}).

L{PinStore}: trust on first use, the node id first seen at each address.

It owns the key pair, the certificate, the TLS wrapping of factories and the
pin store; it knows nothing of peers' messages, slots or addresses beyond
the pinned ones.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import time
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
)
from twisted.logger import Logger, LogLevel
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from zope.interface import implementer

# MAX_PINS: pins kept at most; beyond, the least recently confirmed one is dropped.
from bitp2p.constants import MAX_PINS, NODE_ID_MAX_CHARS
from bitp2p.logs import UNSUMMARISED, RepeatedEvents
from bitp2p.storage import atomic_write

log = Logger()
_moduleLog = log

KEY_FILE = "node.key"
CERT_FILE = "node.crt"

# The first byte of every TLS record that opens a connection: the content
# type "handshake" of the ClientHello.
TLS_RECORD_START = 0x16

# Certificate validity: from a day back (clocks disagree) to about a century
# ahead (nothing checks expiry; the key is the identity).
CERT_BACKDATE = datetime.timedelta(days=1)
CERT_LIFETIME = datetime.timedelta(days=36525)

# Cipher suites for TLS 1.2 (TLS 1.3 uses OpenSSL's defaults, all AEAD):
# forward secrecy and AEAD only.
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"

_NODE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{NODE_ID_MAX_CHARS}}}")

# Longest address accepted in a pin (a host name of 253 characters, brackets,
# a colon and a port fit).
_MAX_ADDRESS_CHARS = 300


# -- node ids ----------------------------------------------------------------


def node_id_of_public_key(public_key: Any) -> str:
    """
    The node id of a public key: the SHA-256, in lowercase hex, of its
    SubjectPublicKeyInfo DER encoding.

    @param public_key: a C{cryptography} public key, or an
        L{OpenSSL.crypto.PKey}.
    """
    if isinstance(public_key, crypto.PKey):
        public_key = public_key.to_cryptography_key()
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def node_id_of_certificate(cert: crypto.X509 | x509.Certificate) -> str:
    """
    The node id of the key a certificate certifies.

    @param cert: an L{OpenSSL.crypto.X509} (as
        C{TLSMemoryBIOProtocol.getPeerCertificate} returns) or a
        C{cryptography} L{x509.Certificate}.
    @raise TypeError: if C{cert} is neither.
    """
    if isinstance(cert, crypto.X509):
        cert = cert.to_cryptography()
    if not isinstance(cert, x509.Certificate):
        raise TypeError(f"not a certificate: {type(cert).__name__}")
    return node_id_of_public_key(cert.public_key())


def peer_node_id(transport: object) -> str | None:
    """
    The node id of the certificate the peer presented on a connection.

    @param transport: the transport a protocol wrapped by
        L{Identity.wrapServerFactory} or L{Identity.wrapClientFactory} sees
        (a C{TLSMemoryBIOProtocol}).
    @return: the node id, or L{None} if C{transport} is not a TLS transport
        or the peer has not presented a certificate (yet: on the server it
        comes with the end of the handshake).
    """
    getPeerCertificate = getattr(transport, "getPeerCertificate", None)
    if getPeerCertificate is None:
        return None
    try:
        cert = getPeerCertificate()
    except (AttributeError, SSL.Error):
        # A TLSMemoryBIOProtocol drops its TLS connection once closed.
        return None
    if cert is None:
        return None
    return node_id_of_certificate(cert)


def looks_like_tls(data: bytes) -> bool:
    """
    Whether the first bytes received on a connection look like the start of
    TLS (a record of type handshake), so that a plain-text node can say why
    it makes no sense of them.
    """
    return bool(data) and data[0] == TLS_RECORD_START


# -- identity ----------------------------------------------------------------


class Identity:
    """
    One node's key pair and self-signed certificate.

    @ivar key: the private key (ECDSA P-256).
    @ivar certificate: the self-signed certificate of C{key}; its subject CN
        is the node id.
    @ivar node_id: the node id: L{node_id_of_public_key} of the public key.
    """

    def __init__(
        self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate | None = None
    ) -> None:
        """
        @param certificate: the certificate of C{key}; a new one by default.
        @raise ValueError: if C{certificate} does not certify C{key}.
        """
        self.key = key
        self.node_id = node_id_of_public_key(key.public_key())
        if certificate is None:
            certificate = make_certificate(key)
        elif node_id_of_certificate(certificate) != self.node_id:
            raise ValueError("the certificate does not certify this key")
        self.certificate = certificate
        self._context: SSL.Context | None = None

    def __repr__(self) -> str:
        return f"<Identity {self.node_id[:8]}>"

    @classmethod
    def generate(cls) -> Identity:
        """
        A new identity, in memory only.
        """
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(
        cls, directory: str | os.PathLike, log: Logger | None = None, now: float | None = None
    ) -> Identity:
        """
        The identity kept in C{directory} (created if missing), or a new one
        written there.

        A key file that cannot be parsed (or is not an ECDSA P-256 key) is
        moved aside to C{node.key.damaged-<now>} and a new identity is made.
        A key file the group or others may access is restricted to 0600. A
        certificate that is missing, damaged, expired or not of the key is
        made anew from the key: the node id stays the same. Each of these is
        logged.

        @param log: where to log; this module's logger by default.
        @param now: the time (unix seconds) for the name of a damaged key
            file; the current time by default.
        @raise OSError: if the directory cannot be created, an existing key
            file cannot be read, or a new key file cannot be written (never
            for the certificate: if it cannot be written, the node runs with
            it in memory).
        """
        if log is None:
            log = _moduleLog
        os.makedirs(directory, exist_ok=True)
        keyPath = os.path.join(directory, KEY_FILE)
        certPath = os.path.join(directory, CERT_FILE)
        key = _loadKey(keyPath, log, time.time() if now is None else now)
        if key is None:
            identity = cls.generate()
            atomic_write(keyPath, _keyPEM(identity.key), 0o600)
            log.info(
                "Created a new node identity {node_id} in {path}",
                node_id=identity.node_id,
                path=keyPath,
            )
            _saveCertificate(certPath, identity.certificate, log)
            return identity
        certificate = _loadCertificate(certPath, key, log)
        if certificate is not None:
            return cls(key, certificate)
        identity = cls(key)
        _saveCertificate(certPath, identity.certificate, log)
        return identity

    # -- TLS ------------------------------------------------------------------

    def context(self) -> SSL.Context:
        """
        The one L{SSL.Context} of both sides of our connections: TLS 1.2 at
        least, our key and certificate, and a certificate required of the
        peer but accepted whoever signed it (identity is checked above TLS).
        It cannot be changed once a connection has used it.
        """
        if self._context is None:
            ctx = SSL.Context(SSL.TLS_METHOD)
            ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
            ctx.set_options(
                SSL.OP_NO_COMPRESSION
                | SSL.OP_NO_RENEGOTIATION
                | SSL.OP_CIPHER_SERVER_PREFERENCE
                | SSL.OP_NO_TICKET
            )
            ctx.set_cipher_list(_TLS12_CIPHERS)
            ctx.use_privatekey(self.key)
            ctx.use_certificate(self.certificate)
            ctx.check_privatekey()
            # A server that verifies its peers must name a session context,
            # or OpenSSL fails any attempt to resume a session.
            ctx.set_session_id(b"bitp2p")
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _acceptAny)
            self._context = ctx
        return self._context

    def serverCreator(self) -> IOpenSSLServerConnectionCreator:
        """
        The connection creator of the accepting side, for
        L{TLSMemoryBIOFactory}.
        """
        return _Creator(self.context())

    def clientCreator(self) -> IOpenSSLClientConnectionCreator:
        """
        The connection creator of the dialing side, for
        L{TLSMemoryBIOFactory}.
        """
        return _Creator(self.context())

    def wrapServerFactory(
        self, factory: IProtocolFactory, repeated: RepeatedEvents = UNSUMMARISED
    ) -> TLSMemoryBIOFactory:
        """
        C{factory} behind TLS, to listen with. A peer that speaks plain text
        instead is refused with one log line (through C{repeated}, a
        L{RepeatedEvents<bitp2p.logs.RepeatedEvents>}: anyone can cause
        it); the protocol C{factory} built for it sees C{connectionMade}
        then C{connectionLost}, and no data. A L{None} from
        C{factory.buildProtocol} refuses the connection, as without TLS.
        """
        wrapped = _TLSServerFactory(self.serverCreator(), False, factory)
        wrapped.repeated = repeated
        return wrapped

    def wrapClientFactory(self, factory: IProtocolFactory) -> TLSMemoryBIOFactory:
        """
        C{factory} behind TLS, to dial with.
        """
        return _TLSClientFactory(self.clientCreator(), True, factory)


def make_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """
    A self-signed certificate of C{key}: subject and issuer CN the node id,
    a random serial number, valid from a day ago for about a century.
    """
    node_id = node_id_of_public_key(key.public_key())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERT_BACKDATE)
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _acceptAny(
    connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """
    The verify callback: any certificate will do (self-signed is the norm);
    OpenSSL still requires the peer to prove it holds the certificate's key.
    """
    return True


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLClientConnectionCreator)
class _Creator:
    """
    Both sides' connections on one context (TLSMemoryBIOProtocol puts each
    in the client or server state itself).
    """

    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def serverConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        return SSL.Connection(self._context, None)

    clientConnectionForTLS = serverConnectionForTLS


# -- the files -----------------------------------------------------------------


def _keyPEM(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _loadKey(path: str, log: Logger, now: float) -> ec.EllipticCurvePrivateKey | None:
    """
    The key kept at C{path}, or L{None} if there is none or it was damaged
    (then it is moved aside). Its mode is restricted to 0600 first if it
    was wider.

    @raise OSError: if it exists but cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode & 0o777
        if mode & 0o077:
            try:
                os.fchmod(fd, 0o600)
            except OSError as e:
                log.warn(
                    "{path} is readable by others (mode {mode:o}) and cannot be "
                    "restricted: {error}",
                    path=path,
                    mode=mode,
                    error=e,
                )
            else:
                log.warn(
                    "{path} had mode {mode:o}, open to other users; restricted it to 600",
                    path=path,
                    mode=mode,
                )
        data = f.read()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        # TypeError: an encrypted key (no password given).
        _setAside(path, now, str(e).splitlines()[0] if str(e) else "unreadable", log)
        return None
    except UnsupportedAlgorithm as e:
        _setAside(path, now, f"unsupported algorithm: {e}", log)
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        _setAside(path, now, f"not an ECDSA P-256 key but {type(key).__name__}", log)
        return None
    return key


def _setAside(path: str, now: float, why: str, log: Logger) -> str:
    """
    Move a damaged key file out of the way, keeping it for inspection.
    """
    aside = f"{path}.damaged-{int(now)}"
    n = 0
    while os.path.lexists(aside):
        n += 1
        aside = f"{path}.damaged-{int(now)}.{n}"
    os.replace(path, aside)
    log.warn(
        "{path} is damaged ({why}); moved it to {aside} and making a new node identity",
        path=path,
        why=why,
        aside=aside,
    )
    return aside


def _loadCertificate(
    path: str, key: ec.EllipticCurvePrivateKey, log: Logger
) -> x509.Certificate | None:
    """
    The certificate kept at C{path} if it is a current one of C{key}, or
    L{None} (saying why, unless there is none).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        log.info("No certificate at {path}; making one from the key", path=path)
        return None
    except OSError as e:
        log.warn("Cannot read {path} ({error}); making a new certificate", path=path, error=e)
        return None
    try:
        cert = x509.load_pem_x509_certificate(data)
        certId = node_id_of_certificate(cert)
    except Exception as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        log.warn("{path} is damaged ({why}); making a new certificate", path=path, why=why)
        return None
    nodeId = node_id_of_public_key(key.public_key())
    if certId != nodeId:
        log.warn(
            "{path} is not the certificate of this node's key; making a new one", path=path
        )
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [nodeId]:
        log.warn("{path} names another node; making a new certificate", path=path)
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        log.info("{path} has expired; making a new certificate", path=path)
        return None
    return cert


def _saveCertificate(path: str, cert: x509.Certificate, log: Logger) -> None:
    try:
        atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as e:
        log.warn(
            "Cannot write {path} ({error}); using the certificate without saving it",
            path=path,
            error=e,
        )


# -- connections -------------------------------------------------------------


def _describePeer(transport) -> str:
    peer = transport.getPeer()
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    if host is None or port is None:
        return str(peer)
    if isinstance(peer, IPv6Address):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


# The kind of the log line of a refused connection that is not TLS
# (RepeatedEvents): anyone can cause it at will.
NOT_TLS = "Connections refused as not TLS"


class _RefusingPlainText(BufferingTLSTransport):
    """
    The server side of a TLS connection that looks at the first byte the
    peer sends: the start of a TLS record passes, with everything after it,
    unchanged; anything else is refused with one log line and the
    connection aborted (the application protocol then sees
    C{connectionLost}).
    """

    _checked = False
    _refused = False

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._checked and data:
            self._checked = True
            if data[0] != TLS_RECORD_START:
                self._refuse(data[0])
                return
        super().dataReceived(data)

    def _refuse(self, first: int) -> None:
        self._refused = True
        peer = _describePeer(self.transport)
        host = getattr(self.transport.getPeer(), "host", None)
        emit = self.factory.repeated.emit
        if first in b"\t\r\n" or 0x20 <= first < 0x7F:
            emit(
                log,
                LogLevel.warn,
                NOT_TLS,
                host,
                "Refusing plain-text connection from {peer}: this node requires TLS (--tls)",
                peer=peer,
            )
        else:
            emit(
                log,
                LogLevel.warn,
                NOT_TLS,
                host,
                "Refusing connection from {peer}: not TLS (first byte 0x{first:02x}); "
                "this node requires TLS (--tls)",
                peer=peer,
                first=first,
            )
        self.abortConnection()


class _TLSServerFactory(TLSMemoryBIOFactory):
    protocol = _RefusingPlainText
    repeated = UNSUMMARISED

    def buildProtocol(self, addr):
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped)


class _TLSClientFactory(TLSMemoryBIOFactory):
    def buildProtocol(self, addr):
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped)


# -- pins ----------------------------------------------------------------------


def _short(node_id: str) -> str:
    return node_id if len(node_id) <= 8 else node_id[:8] + "..."


class PinStore:
    """
    Trust on first use: the node id first seen at each address.

    Addresses are strings (C{"host:port"}); the caller writes them one way
    (e.g. C{str} of an L{Address<bitp2p.address.Address>}). At most
    C{max_pins} are kept; when full, the pin least recently made or
    confirmed is dropped.
    """

    def __init__(self, max_pins: int = MAX_PINS) -> None:
        if isinstance(max_pins, bool) or not isinstance(max_pins, int) or max_pins < 1:
            raise ValueError(f"max_pins must be a positive integer, not {max_pins!r}")
        self.max_pins = max_pins
        # Address -> node id, least recently made or confirmed first.
        self._pins: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._pins)

    def __contains__(self, address: object) -> bool:
        return address in self._pins

    def get(self, address: str) -> str | None:
        """
        The node id pinned to C{address}, or L{None}; a look, not a
        confirmation.
        """
        return self._pins.get(address)

    def items(self) -> list[tuple[str, str]]:
        """
        The C{(address, node_id)} pins, least recently confirmed first.
        """
        return list(self._pins.items())

    def check(self, address: str, node_id: str) -> str | None:
        """
        Check the node met at C{address} against its pin.

        @return: L{None} if C{node_id} is the one pinned (the pin is then the
            most recently confirmed) or C{address} has no pin (then it is
            pinned to C{node_id}); otherwise a one-line reason, e.g.
            C{"127.0.0.1:5001 is pinned to node 3f9c0a12..., not ab12cd34..."}.
        @raise ValueError: if a new pin would be invalid (see L{pin}).
        """
        pinned = self._pins.get(address)
        if pinned is None:
            self.pin(address, node_id)
            return None
        if pinned == node_id:
            self._pins[address] = self._pins.pop(address)
            return None
        shown, other = _short(pinned), _short(node_id)
        if shown == other:
            shown, other = pinned, node_id
        return f"{address} is pinned to node {shown}, not {other}"

    def pin(self, address: str, node_id: str) -> None:
        """
        Pin C{address} to C{node_id}, replacing any pin it had; dropping the
        least recently confirmed pin if there are too many.

        @raise ValueError: if C{address} is not a non-empty string of at most
            300 characters or C{node_id} not 1 to 64 characters of
            C{[A-Za-z0-9_-]}.
        """
        _checkAddress(address)
        if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
            raise ValueError(
                f"node id must be 1 to {NODE_ID_MAX_CHARS} characters of [A-Za-z0-9_-], "
                f"not {_show(node_id)}"
            )
        self._pins.pop(address, None)
        self._pins[address] = node_id
        while len(self._pins) > self.max_pins:
            del self._pins[next(iter(self._pins))]

    def unpin(self, address: str) -> bool:
        """
        Forget the pin of C{address}.

        @return: whether it had one.
        """
        return self._pins.pop(address, None) is not None

    def to_json(self) -> dict[str, Any]:
        """
        The pins, fit for JSON, least recently confirmed first::

            {"pins": [{"address": "127.0.0.1:5001", "node_id": "3f9c..."}, ...]}
        """
        return {
            "pins": [
                {"address": address, "node_id": node_id}
                for address, node_id in self._pins.items()
            ]
        }

    @classmethod
    def from_json(cls, body: object, max_pins: int = MAX_PINS) -> PinStore:
        """
        Rebuild the pins from L{to_json} output. Entries whose node id is
        not a valid one are skipped; of more than C{max_pins}, the last
        (most recently confirmed) are kept.

        @raise ValueError: in one line, if C{body} is not an object with a
            list of C{{"address": str, "node_id": str}} objects.
        """
        if not isinstance(body, dict):
            raise ValueError(f"pins are not an object but {type(body).__name__}")
        entries = body.get("pins")
        if not isinstance(entries, list):
            raise ValueError("pins document has no list of pins")
        store = cls(max_pins)
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ValueError(f"pin {n} is not an object but {type(entry).__name__}")
            address, node_id = entry.get("address"), entry.get("node_id")
            try:
                _checkAddress(address)
            except ValueError as e:
                raise ValueError(f"pin {n}: {e}") from None
            if not isinstance(node_id, str):
                raise ValueError(f"pin {n}: node_id is not a string but {_show(node_id)}")
            if _NODE_ID.fullmatch(node_id):
                store.pin(address, node_id)
        return store


def _checkAddress(address: object) -> None:
    if not isinstance(address, str) or not 0 < len(address) <= _MAX_ADDRESS_CHARS:
        raise ValueError(
            f"address must be a string of 1 to {_MAX_ADDRESS_CHARS} characters, "
            f"not {_show(address)}"
        )
    if not address.isprintable():
        raise ValueError(f"address must be printable, not {_show(address)}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
