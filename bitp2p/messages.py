"""
The message registry: the application's own message types.

L{MessageRegistry} owns the registered types (L{MessageType}: a name, a
handler, an optional validator), the live mapping of handlers that peers
dispatch established connections' messages through (gossip's control types
included), the routing of a gossiped message to gossip, the validation of a
received message (L{MessageRegistry.accept}), and the check of a message to
be sent (L{MessageRegistry.outgoing}), which the wire format encodes once
for every peer it goes to. A handler that raises is reported by the one
policy of L{reportHandlerFailure<bitp2p.peer.reportHandlerFailure>}.

It knows no wire class (it asks the node's L{IWireFormat
<bitp2p.interfaces.IWireFormat>}), no connection and no address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import attrs

from bitp2p.errors import ProtocolViolation
from bitp2p.gossip import CONTROL_TYPES, GOSSIP_FIELD
from bitp2p.peer import Peer, reportHandlerFailure

if TYPE_CHECKING:
    from bitp2p.gossip import Gossip
    from bitp2p.interfaces import IWireFormat

MessageHandler = Callable[[Peer, dict], object]
MessageValidator = Callable[[dict], "dict | None"]


@attrs.frozen
class MessageType:
    """
    An application message type: its name (the C{type} field), the function
    that checks a received one, and the one that handles it.
    """

    name: str
    handler: MessageHandler
    validator: MessageValidator | None = None


class MessageRegistry:
    """
    Registered application message types, and their dispatch.

    @ivar handlers: what peers hand established connections' messages to,
        by type (a live mapping: types registered later count). Each
        registered type's handler carries C{many}, C{(peer, messages) ->
        rest}: the same for a run of messages of its type, in one call,
        stopping when the peer stops reading or the type's handler changes.
    """

    def __init__(self, wireFormat: IWireFormat, gossip: Gossip) -> None:
        self._wireFormat = wireFormat
        self._types: dict[str, MessageType] = {}
        self._reserved = wireFormat.reservedTypes
        self.handlers: dict[str, MessageHandler] = {
            kind: _closingOnViolation(getattr(gossip, kind))
            for kind in (CONTROL_TYPES if wireFormat.gossip else ())
        }
        self._gossipReceived = _closingOnViolation(gossip.received)
        self._current: dict[str, list[bool]] = {}

    def register(
        self, message_type: str, handler: MessageHandler, validator: MessageValidator | None
    ) -> MessageType:
        """
        Handle application messages of C{message_type} (see
        L{Node.registerMessage<bitp2p.node.Node.registerMessage>}).

        @raise ValueError: for a reserved or empty type name.
        """
        if not isinstance(message_type, str) or not message_type:
            raise ValueError(f"a message type is a non-empty string, not {message_type!r}")
        if message_type in self._reserved:
            raise ValueError(f"{message_type!r} is a protocol message type")
        registered = self._types[message_type] = MessageType(message_type, handler, validator)
        self._retire(message_type)
        self.handlers[message_type] = self._dispatcher(registered)
        return registered

    def unregister(self, message_type: str) -> None:
        if self._types.pop(message_type, None) is not None:
            self._retire(message_type)
            del self.handlers[message_type]

    def _retire(self, message_type: str) -> None:
        """
        The dispatcher of C{message_type} is being replaced or removed: a
        run it is handling stops there (the rest goes where the type's
        messages go now).
        """
        current = self._current.pop(message_type, None)
        if current is not None:
            current[0] = False

    def handles(self, message_type: str) -> bool:
        return message_type in self._types

    def _dispatcher(self, registered: MessageType) -> MessageHandler:
        """
        What peers call for each message of a registered type: gossip's
        handling for a gossiped one, else L{accept}. Without a validator, the
        handler is called straight away (the peer reports what it raises):
        on the busiest path, every call counts (C{bench/throughput.py}).
        """
        gossip = self._gossipReceived
        direct = self.accept if registered.validator is not None else registered.handler

        def received(peer: Peer, message: dict) -> None:
            if GOSSIP_FIELD in message:
                gossip(peer, message)
            else:
                direct(peer, message)

        kind = registered.name
        # Until the type is unregistered or registered again: a handler may
        # do either in the middle of a run.
        current = self._current[kind] = [True]

        def many(peer: Peer, messages: list[dict]) -> list[dict]:
            # received() for a run of messages of this type, in one call
            # (see Peer.messagesReceived), reporting what a handler raises
            # as the peer would; the messages left once the peer stops
            # reading or the handler is replaced.
            pending = iter(messages)
            for message in pending:
                if not peer.reading or not current[0]:
                    return [message, *pending]
                try:
                    if GOSSIP_FIELD in message:
                        gossip(peer, message)
                    else:
                        direct(peer, message)
                except Exception:
                    reportHandlerFailure(kind, peer)
            return []

        received.many = many  # type: ignore[attr-defined]
        return received

    def accept(self, peer: Peer, message: dict) -> bool:
        """
        Validate an application message from C{peer} and hand it to its
        handler (gossip calls this for each new message it receives).

        @return: C{False} if it was invalid (C{peer} is then closed for a
            violation) or its type is not registered.
        """
        registered = self._types.get(message["type"])
        if registered is None:
            return False
        if registered.validator is not None:
            try:
                checked = registered.validator(message)
            except (ProtocolViolation, ValueError, TypeError, KeyError) as e:
                peer.violation(ProtocolViolation(f"invalid {registered.name!r} message: {e}"))
                return False
            if checked is not None:
                message = checked
        try:
            registered.handler(peer, message)
        except Exception:
            reportHandlerFailure(registered.name, peer)
        return True

    def outgoing(self, message: dict) -> dict:
        """
        Check an application message before it is sent.

        @return: the frames to send it with (its encoding, made once).
        @raise ValueError: if it is not a dict with an application C{type},
            or the wire format cannot carry it.
        """
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ValueError("a message is a dict with a non-empty string 'type'")
        if kind in self._reserved:
            raise ValueError(f"{kind!r} is a protocol message type: the node sends those itself")
        return self._wireFormat.frames(message)


def _closingOnViolation(method: Callable[[Peer, dict], None]) -> MessageHandler:
    """
    Wrap a gossip method so that its protocol violations close the peer.
    """

    def handle(peer: Peer, message: dict) -> None:
        try:
            method(peer, message)
        except ProtocolViolation as violation:
            peer.violation(violation)

    return handle


__all__ = ["MessageHandler", "MessageRegistry", "MessageType", "MessageValidator"]
