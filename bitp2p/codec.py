"""
Messages: encoding, decoding and validation. No framing, no Twisted.

L{decode} turns one framed line into a message dict and enforces the wire
contract's rules on it: a line that is not a JSON object with a string
C{type}, or a known message whose fields have the wrong types or values out
of range, raises L{ProtocolViolation}. Known messages come back normalised
(optional fields filled in, C{addr} entries parsed into L{Address} tuples);
messages of unknown types come back as parsed, for the application to judge.

L{encode} is the inverse, and the builders (L{version}, L{verack},
L{getaddr}, L{addr}, L{ping}, L{pong}) make messages ready for it.

The JSON library sits behind C{_loads}, C{_dumps} and L{decode_many}.
orjson is used when installed: C{bench/codec.py} measured it decoding a
123-byte message 7x faster than the standard library and encoding it 17x
faster, which makes a chunk's worth of such messages go through
L{decode_many} 2.9x faster and L{encode} 9.7x faster. Whatever orjson
refuses is handed to the standard library, which has the last word, and so
do lines holding integers of 20 digits or more, or negative ones of 19
(orjson would read those outside 64 bits as floats): what is accepted, and
how it reads, is the standard library's, but for what neither can send on:
a lone C{\\uD800}-C{\\uDFFF} escape, a string that is not Unicode.
"""

from __future__ import annotations

import json
import math
import operator
import re
from typing import Any, Callable, Iterable, Mapping

from bitp2p.address import Address, AddressError, is_reachable, parse_address, parse_dialable
from bitp2p.constants import (
    MAX_ADDR_ENTRIES,
    NODE_ID_MAX_CHARS,
    NONCE_MAX,
    PROTOCOL_VERSION,
    USER_AGENT_MAX_CHARS,
)

__all__ = [
    "KNOWN_TYPES",
    "ProtocolViolation",
    "addr",
    "decode",
    "decode_line",
    "decode_many",
    "encode",
    "getaddr",
    "needs_exact",
    "ping",
    "pong",
    "verack",
    "version",
]


class ProtocolViolation(Exception):
    """
    A peer broke the wire protocol; C{str()} is a one-line reason.
    """


def _rejectConstant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_rejectConstant)
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


# A \uD800-\uDFFF escape: JSON's grammar allows one alone, but the string it
# makes is not Unicode and has no UTF-8 form: a message holding one could
# never be encoded to be sent on (orjson refuses such a line; the standard
# library would accept it).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _stdlibLoads(data: bytes) -> Any:
    message = _decoder.decode(data.decode("utf-8"))
    if _SURROGATE_ESCAPE.search(data) is not None:
        # (A pair of escapes that makes one character is fine: the check
        # is whether what was decoded has a UTF-8 form.)
        try:
            _stdlibDumps(message)
        except UnicodeEncodeError:
            raise ProtocolViolation("message holds a lone surrogate, not valid Unicode") from None
    return message


def _stdlibDumps(obj: Any) -> bytes:
    return _encoder.encode(obj).encode("utf-8")


# orjson reads an integer outside [-2^63, 2^64) as a float, where the
# standard library keeps it exact. Such an integer has 20 digits or more, or
# a minus sign and 19 or more: text holding one of those runs is decoded by
# the standard library. (Mapping digits to 1 and "-" to 2, then looking for
# the runs, is ~5x cheaper than a regex, and is done once per received
# chunk, not once per line.) A run of exactly 20 digits is looked at
# again: one that stands alone as an integer of at most 2^64 - 1 (a ping's
# nonce, half of them) orjson reads exactly, as the standard library does.
_DIGITS = bytes(1 if 0x30 <= b <= 0x39 else 2 if b == 0x2D else 0 for b in range(256))
_LONG_RUN = b"\x01" * 20
_RUN_19 = b"\x01" * 19
_LONG_NEGATIVE = b"\x02" + b"\x01" * 19
# A run of 19 digits or more, its sign, and what follows it.
_LONG_NUMBER = re.compile(rb"(-?)([0-9]{19,})(.?)", re.DOTALL)
_U64_DIGITS = str(2**64 - 1).encode()
# What makes digits part of a float (a fraction or an exponent) when it
# stands before or after them.
_FLOAT_BEFORE = frozenset(b".eE+")
_FLOAT_AFTER = frozenset(b".eE")


try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    orjson = None
    _fastLoads = None
    _FastError: type[Exception] = ValueError
    _loads, _dumps = _stdlibLoads, _stdlibDumps
    JSON_LIBRARY = "json"
else:
    _fastLoads = orjson.loads
    _FastError = orjson.JSONDecodeError
    JSON_LIBRARY = "orjson"

    def _loads(data: bytes) -> Any:
        if not needs_exact(data):
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
        return _stdlibLoads(data)

    def _dumps(obj: Any) -> bytes:
        try:
            return orjson.dumps(obj)
        except TypeError:
            return _stdlibDumps(obj)


def needs_exact(text: bytes) -> bool:
    """
    Whether C{text} (one or many lines) may hold an integer that only the
    standard library reads exactly, so that L{decode_many} must not take
    the fast path for it.
    """
    if _fastLoads is None:
        return True
    mapped = text.translate(_DIGITS)
    # Both hold 19 digits in a row, which is rare: one search for those
    # first.
    return (
        _RUN_19 in mapped
        and (_LONG_RUN in mapped or _LONG_NEGATIVE in mapped)
        and not _longRunsFit(text)
    )


def _longRunsFit(text: bytes) -> bool:
    """
    Whether every run of 19 digits or more in C{text} is one that orjson
    reads as the standard library does: 19 digits without a minus sign,
    or an integer of exactly 20 digits up to 2^64 - 1, not part of a float
    (digits in a string read the same either way). Anything else (a longer
    run, a negative one, 20 digits in a fraction or an exponent) is not.
    """
    for match in _LONG_NUMBER.finditer(text):
        sign, digits, after = match.groups()
        if len(digits) == 19 and not sign:
            continue
        if sign or len(digits) != 20 or digits > _U64_DIGITS or (after and after[0] in _FLOAT_AFTER):
            return False
        start = match.start()
        if start and text[start - 1] in _FLOAT_BEFORE:
            return False
    return True


_NODE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{NODE_ID_MAX_CHARS}}}")


def _isInt(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _isNumber(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _nodeId(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _NODE_ID.fullmatch(value):
        raise ProtocolViolation(
            f"{kind}: node_id must be 1 to {NODE_ID_MAX_CHARS} characters of [A-Za-z0-9_-]"
        )
    return value


def _port(kind: str, value: object) -> int:
    if not _isInt(value) or not 0 <= value <= 65535:  # type: ignore[operator]
        raise ProtocolViolation(f"{kind}: port must be an int in 0..65535")
    return value  # type: ignore[return-value]


def _validateVersion(message: dict) -> dict:
    if "node_id" not in message:
        raise ProtocolViolation("version: node_id is required")
    if "port" not in message:
        raise ProtocolViolation("version: port is required")
    _nodeId("version", message["node_id"])
    _port("version", message["port"])
    protocol = message.get("protocol", PROTOCOL_VERSION)
    if not _isInt(protocol) or protocol < 1:
        raise ProtocolViolation("version: protocol must be an int >= 1")
    message["protocol"] = protocol
    user_agent = message.get("user_agent", "")
    if not isinstance(user_agent, str) or len(user_agent) > USER_AGENT_MAX_CHARS:
        raise ProtocolViolation(
            f"version: user_agent must be a string of at most {USER_AGENT_MAX_CHARS} characters"
        )
    message["user_agent"] = user_agent
    timestamp = message.get("timestamp")
    if timestamp is not None:
        if not _isNumber(timestamp) or not 0 <= timestamp < math.inf:
            raise ProtocolViolation("version: timestamp must be a finite number >= 0")
        timestamp = int(timestamp)
    message["timestamp"] = timestamp
    addr_recv = message.get("addr_recv")
    if addr_recv is not None:
        if not isinstance(addr_recv, str):
            raise ProtocolViolation("version: addr_recv must be a string")
        try:
            addr_recv = parse_address(addr_recv)
        except AddressError:
            addr_recv = None  # informational only: an odd value is ignored
        if addr_recv is not None and not is_reachable(addr_recv):
            addr_recv = None
    message["addr_recv"] = addr_recv
    return message


def _validateVerack(message: dict) -> dict:
    node_id = message.get("node_id")
    message["node_id"] = None if node_id is None else _nodeId("verack", node_id)
    port = message.get("port")
    message["port"] = None if port is None else _port("verack", port)
    return message


def _validateGetaddr(message: dict) -> dict:
    return message


def _entry(item: object) -> tuple[Address, int | None] | None:
    """
    One C{addr} entry, or L{None} if it is malformed or unroutable.
    """
    seen: int | None = None
    if isinstance(item, dict):
        text = item.get("addr")
        when = item.get("time")
        if when is not None:
            if not _isNumber(when) or not 0 <= when < math.inf:
                return None
            seen = int(when)
    else:
        text = item
    if not isinstance(text, str):
        return None
    try:
        # (None if not routable or not reachable: PROTOCOL.md's addresses
        # are IP literals, the Tor, I2P and CJDNS forms a Bitcoin network
        # brings are malformed here.)
        address = parse_dialable(text)
    except AddressError:
        return None
    if address is None:
        return None
    return (address, seen)


def _validateAddr(message: dict) -> dict:
    peers = message.get("peers")
    if not isinstance(peers, list):
        raise ProtocolViolation("addr: peers must be a list")
    if len(peers) > MAX_ADDR_ENTRIES:
        raise ProtocolViolation(f"addr with {len(peers)} entries")
    entries = []
    for item in peers:
        entry = _entry(item)
        if entry is not None:
            entries.append(entry)
    message["peers"] = entries
    message["dropped"] = len(peers) - len(entries)
    return message


def _validateNonce(kind: str) -> Callable[[dict], dict]:
    def validate(message: dict) -> dict:
        nonce = message.get("nonce")
        if not _isInt(nonce) or not 0 <= nonce <= NONCE_MAX:
            raise ProtocolViolation(f"{kind}: nonce must be an int in 0..2^64-1")
        return message

    return validate


_VALIDATORS: dict[str, Callable[[dict], dict]] = {
    "version": _validateVersion,
    "verack": _validateVerack,
    "getaddr": _validateGetaddr,
    "addr": _validateAddr,
    "ping": _validateNonce("ping"),
    "pong": _validateNonce("pong"),
}

KNOWN_TYPES = frozenset(_VALIDATORS)


def decode(line: bytes) -> dict:
    """
    Decode and check one line (its delimiter already removed).

    @param line: the raw bytes of the line.
    @return: the message; known types normalised, unknown ones as parsed.
    @raise ProtocolViolation: if the line breaks the wire contract.
    """
    try:
        message = _loads(line)
    except UnicodeDecodeError:
        raise ProtocolViolation("message is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise ProtocolViolation("message is not valid JSON") from None
    return _check(message)


def _check(message: object) -> dict:
    if type(message) is not dict:
        raise ProtocolViolation("message is not a JSON object")
    kind = message.get("type")
    if type(kind) is not str:
        raise ProtocolViolation("message has no string type")
    validate = _VALIDATORS.get(kind)
    if validate is None:
        return message
    return validate(message)


def _checkViolation(message: object) -> ProtocolViolation:
    """
    The violation L{_check} finds in a message known to be bad.
    """
    try:
        _check(message)
    except ProtocolViolation as violation:
        return violation
    raise AssertionError(f"{message!r} passes the checks")  # pragma: no cover


_NO_TYPE = object()
# A message's type, at C speed (a TypeError or KeyError for what is not an
# object with one).
_typeOf = operator.itemgetter("type")


def decode_many(
    lines: Iterable[bytes], exact: bool = True, runs: list[int] | None = None
) -> tuple[list[dict], ProtocolViolation | None]:
    """
    Decode lines in order, up to the first that breaks the wire contract.
    Empty lines are skipped.

    This is L{decode} for a whole received chunk, with the per-line work cut
    to the minimum: it is the receiving hot path.

    @param lines: the lines, delimiters removed.
    @param exact: whether the lines may hold integers that only the
        standard library reads exactly (see L{needs_exact}); when false,
        orjson decodes every line it accepts.
    @param runs: if given, a list to which the index (in the returned
        messages) of each message whose type differs from the one before
        it is appended: where each run of messages of one type starts (a
        chunk of one type is one run), for a caller that accounts per type.
        It costs nothing more: the loop compares each message's type with
        the one before's anyway, to check it only when it changes.
    @return: the messages of the lines before the first bad one, and that
        line's L{ProtocolViolation} (or L{None} if every line was good).
    """
    if runs is None:
        runs = []
    # Unequal to every type, None included: the first message is checked.
    last: object = _NO_TYPE
    if exact:
        messages = []
        for line in lines:
            if line:
                try:
                    message = decode(line)
                except ProtocolViolation as violation:
                    return messages, violation
                kind = message["type"]
                if kind != last:
                    last = kind
                    runs.append(len(messages))
                messages.append(message)
        return messages, None
    fastLoads, fastError, validators = _fastLoads, _FastError, _VALIDATORS
    # The usual chunk at C speed: every line decoded, and every message's
    # type read, by two map()s, and the types compared by one count(). Any
    # line orjson refuses, or that is not an object with a type, raises
    # here, and a chunk of several types does not count up: those take
    # the loop below, from the start.
    try:
        messages = list(map(fastLoads, lines))
        kinds = list(map(_typeOf, messages))
    except (fastError, TypeError, KeyError, IndexError):
        pass
    else:
        if not kinds:
            return messages, None
        kind = kinds[0]
        if type(kind) is str and kinds.count(kind) == len(kinds):
            runs.append(0)
            validate = validators.get(kind)
            if validate is not None:
                for index, message in enumerate(messages):
                    try:
                        messages[index] = validate(message)
                    except ProtocolViolation as violation:
                        del messages[index:]
                        if not index:
                            runs.pop()  # the run has no message
                        return messages, violation
            return messages, None
    messages = []
    append = messages.append
    validate = None
    # decode() and _check() inlined: this loop runs once per message. The
    # type is checked, and its validator looked up, only when it differs
    # from the message before's (a str equals only a str), which is also
    # where a run starts: for the usual chunk, all of one type, once.
    for line in lines:
        if not line:
            continue
        try:
            message = fastLoads(line)
        except fastError:
            try:
                message = decode(line)  # the standard library has the last word
            except ProtocolViolation as violation:
                return messages, violation
            if message["type"] != last:
                last = message["type"]
                validate = validators.get(last)
                runs.append(len(messages))
            append(message)
            continue
        try:
            kind = message["type"]  # only a dict takes a str key without error
        except (TypeError, KeyError, IndexError):
            return messages, _checkViolation(message)
        if kind != last:
            if type(kind) is not str:
                return messages, _checkViolation(message)
            last = kind
            validate = validators.get(kind)
            runs.append(len(messages))
        if validate is not None:
            try:
                message = validate(message)
            except ProtocolViolation as violation:
                if runs[-1] == len(messages):
                    runs.pop()  # the run this message started has none
                return messages, violation
        append(message)
    return messages, None


def decode_line(line: bytes) -> dict | None:
    """
    L{decode} for one line (not empty, its delimiter removed) when the
    fast path can judge it: its message if orjson decodes it to an object
    with a string C{type} that passes its checks; L{None} for anything
    else (a line only the standard library reads, or one that breaks the
    contract), which L{decode_many} then judges.
    """
    if _fastLoads is None or needs_exact(line):
        return None
    try:
        message = _fastLoads(line)
        kind = message["type"]
    except (_FastError, TypeError, KeyError, IndexError):
        return None
    if type(kind) is not str:
        return None
    validate = _VALIDATORS.get(kind)
    if validate is None:
        return message
    try:
        return validate(message)
    except ProtocolViolation:
        return None


def _wireEntry(entry: object) -> object:
    if isinstance(entry, tuple):
        address, seen = entry
        return str(address) if seen is None else {"addr": str(address), "time": seen}
    return entry


def encode(message: Mapping) -> bytes:
    """
    Compact UTF-8 JSON of a message, without a trailing newline. Accepts
    what L{decode} returns.
    """
    kind = message.get("type")
    if kind == "addr":
        out = {k: v for k, v in message.items() if k != "dropped"}
        # (Entries made by addr() are in their wire form already: only
        # tuples, as decode() gives them, are turned into it.)
        out["peers"] = [_wireEntry(e) if isinstance(e, tuple) else e for e in message["peers"]]
        return _dumps(out)
    if kind in ("version", "verack"):
        out = {k: v for k, v in message.items() if v is not None}
        if isinstance(out.get("addr_recv"), Address):
            out["addr_recv"] = str(out["addr_recv"])
        return _dumps(out)
    return _dumps(message)


def version(
    node_id: str,
    port: int,
    *,
    user_agent: str | None = None,
    timestamp: int | None = None,
    addr_recv: Address | None = None,
    protocol: int = PROTOCOL_VERSION,
) -> dict:
    """
    A C{version} message; fields that are L{None} are left out.
    """
    message: dict = {"type": "version", "node_id": node_id, "port": port, "protocol": protocol}
    if user_agent is not None:
        message["user_agent"] = user_agent
    if timestamp is not None:
        message["timestamp"] = timestamp
    if addr_recv is not None:
        message["addr_recv"] = str(addr_recv)
    return message


def verack(node_id: str | None = None, port: int | None = None) -> dict:
    message: dict = {"type": "verack"}
    if node_id is not None:
        message["node_id"] = node_id
    if port is not None:
        message["port"] = port
    return message


_GETADDR = {"type": "getaddr"}


def getaddr() -> dict:
    return dict(_GETADDR)


def addr(entries: Iterable[tuple[Address, int | None]]) -> dict:
    """
    An C{addr} message: plain C{host:port} strings for entries without a
    time, C{{"addr": ..., "time": ...}} objects for those with one.
    """
    # (_wireEntry inlined: this runs per relayed or answered address.)
    return {
        "type": "addr",
        "peers": [
            str(address) if seen is None else {"addr": str(address), "time": seen}
            for address, seen in entries
        ],
    }


def ping(nonce: int) -> dict:
    return {"type": "ping", "nonce": nonce}


def pong(nonce: int) -> dict:
    return {"type": "pong", "nonce": nonce}
