"""
The node's store: the files of its data directory, and when they are written.

L{NodeStore} owns the four documents a node keeps (L{bitp2p.storage} writes
them atomically, with a checksum):

  - C{peers.json}: the address manager; written every C{save_interval_s},
    at the stop, and C{growth_save_delay_s} after the address manager has
    doubled since it was last saved or loaded (so that a node killed before
    its first periodic save does not come back knowing only its seeds: a
    growing book is written about log2(size) times, not on every C{addr});
  - C{banlist.json}: the bans, written whenever they change and with the
    peers;
  - C{anchors.json}: the automatic outbound peers at the stop, read once
    and deleted at the next start (Bitcoin Core's anchors);
  - C{pins.json}: with TLS, the node id pinned to each address dialed.

A file that is damaged, of another kind or of an unknown version is set
aside and the node starts as if it were absent. The store does not hold the
address manager, the bans or the pins: it reads them through callables
when it writes, and hands what it loaded to the node (L{Loaded}). It holds
the directory's lock (C{.lock}, L{bitp2p.storage.DataDir}) from its
construction to L{NodeStore.close} (the node's stop), and again from the
next L{NodeStore.load} (a restart). Without a data directory it does
nothing.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable

import attrs
from twisted.logger import Logger

from bitp2p.address import Address, AddressError, parse_address
from bitp2p.addrbook import AddressBook, AddressBookError
from bitp2p.addrman import AddrManError
from bitp2p.banman import BanError, BanMan
from bitp2p.constants import ANCHORS_FILE, BANLIST_FILE, PEERS_FILE, PINS_FILE
from bitp2p.storage import DataDir, new_node_id
from bitp2p.tls import PinStore

if TYPE_CHECKING:
    from bitp2p.interfaces import IAddressManager

log = Logger()

# Saved document kinds and versions (see bitp2p.storage).
PEERS_FORMAT = ("bitp2p-peers", 2)
BANLIST_FORMAT = ("bitp2p-banlist", 1)
ANCHORS_FORMAT = ("bitp2p-anchors", 1)
PINS_FORMAT = ("bitp2p-pins", 1)


@attrs.frozen
class Loaded:
    """
    What the store read at start; L{None} for what was absent or unusable.
    """

    book: Any = None
    bans: BanMan | None = None
    pins: PinStore | None = None
    anchors: tuple[Address, ...] = ()


@attrs.frozen
class BookKind:
    """
    How to make the node's kind of address manager.

    @ivar simple: the flat L{AddressBook} rather than the bucketed
        L{AddrMan<bitp2p.addrman.AddrMan>}.
    @ivar new: makes an empty one.
    @ivar fromJson: restores one from what its C{to_json} gave.
    """

    simple: bool
    new: Callable[[], Any]
    fromJson: Callable[[Any], Any]


class NodeStore:
    """
    The data directory's documents, and when they are written.

    @param path: the data directory, or L{None} for none.
    """

    def __init__(
        self,
        path: str | None,
        reactor,
        growthSaveDelay: float,
        book: Callable[[], IAddressManager],
        bans: Callable[[], BanMan],
        pins: Callable[[], PinStore | None],
        running: Callable[[], bool],
    ) -> None:
        self._datadir = DataDir(path) if path else None
        self._reactor = reactor
        self._growthSaveDelay = growthSaveDelay
        self._book = book
        self._bans = bans
        self._pins = pins
        self._running = running
        self._savedSize = 0  # addresses in the book at the last save or load
        self._growthSave = None  # the pending save of a grown book

    @property
    def path(self):
        """
        The data directory (a C{Path}), or L{None}.
        """
        return self._datadir.path if self._datadir is not None else None

    @property
    def growthSavePending(self) -> bool:
        """
        Whether a save of the grown address manager is scheduled.
        """
        return self._growthSave is not None and self._growthSave.active()

    def nodeId(self, now: float) -> str:
        """
        The node id kept in the data directory (made and written if there is
        none), or a new random one without a data directory.
        """
        if self._datadir is None:
            return new_node_id()
        return self._datadir.load_node_id(now)

    # -- loading ----------------------------------------------------------------

    def load(
        self, now: float, kind: BookKind, rng: random.Random, tls: bool, anchors: int
    ) -> Loaded:
        """
        Read the documents (at most C{anchors} anchors), after taking the
        directory's lock again if L{close} released it (a node restarted).
        The anchors file is deleted once read: anchors are used once, and a
        crash before the next clean stop must not make them permanent.
        """
        if self._datadir is None:
            return Loaded()
        self._datadir.lock()
        book = None
        body = self._datadir.load_document(PEERS_FILE, *PEERS_FORMAT, now, upgrade=_upgradePeers)
        if body is not None:
            try:
                book = _bookFrom(body, now, kind, rng)
            except (AddrManError, AddressBookError, AddressError) as e:
                self._datadir.set_aside(PEERS_FILE, now, str(e))
                book = kind.new()
            else:
                log.info(
                    "Loaded {count} addresses from {path}",
                    count=len(book),
                    path=str(self._datadir.path / PEERS_FILE),
                )
                self._savedSize = len(book)
        bans = None
        body = self._datadir.load_document(BANLIST_FILE, *BANLIST_FORMAT, now)
        if body is not None:
            try:
                bans = BanMan.from_json(body, now)
            except BanError as e:
                self._datadir.set_aside(BANLIST_FILE, now, str(e))
        pins = None
        if tls:
            body = self._datadir.load_document(PINS_FILE, *PINS_FORMAT, now)
            if body is not None:
                try:
                    pins = PinStore.from_json(body)
                except ValueError as e:
                    self._datadir.set_aside(PINS_FILE, now, str(e))
        found = []
        body = self._datadir.load_document(ANCHORS_FILE, *ANCHORS_FORMAT, now)
        self._datadir.remove(ANCHORS_FILE)
        if isinstance(body, list):
            for text in body[:anchors]:
                try:
                    found.append(parse_address(text))
                except AddressError:
                    continue
        return Loaded(book, bans, pins, tuple(found))

    # -- saving -----------------------------------------------------------------

    def save(self) -> None:
        """
        Write the address manager, the bans and the pins (with TLS).
        """
        if self._datadir is None:
            return
        book = self._book()
        self._write(PEERS_FILE, PEERS_FORMAT, book.to_json())
        self._savedSize = len(book)
        self.saveBans()
        pins = self._pins()
        if pins is not None:
            self._write(PINS_FILE, PINS_FORMAT, pins.to_json())

    def saveBans(self) -> None:
        if self._datadir is not None:
            self._write(BANLIST_FILE, BANLIST_FORMAT, self._bans().to_json(self._reactor.seconds()))

    def saveAnchors(self, anchors: list[Address]) -> None:
        """
        Remember the automatic outbound peers, to dial them first at the
        next start.
        """
        if self._datadir is not None:
            self._write(ANCHORS_FILE, ANCHORS_FORMAT, [str(a) for a in anchors])

    def bookGrew(self) -> None:
        """
        Addresses were learned: once the book holds twice what was last
        saved or loaded, save it C{growth_save_delay_s} later (the delay
        gathers the answers to a node's first few C{getaddr}).
        """
        if self._datadir is None or not self._running() or self._growthSave is not None:
            return
        if len(self._book()) >= 2 * max(self._savedSize, 1):
            self._growthSave = self._reactor.callLater(self._growthSaveDelay, self._saveGrown)

    def _saveGrown(self) -> None:
        self._growthSave = None
        self.save()

    def stop(self) -> None:
        """
        Cancel a pending growth save (the stop saves anyway).
        """
        if self._growthSave is not None and self._growthSave.active():
            self._growthSave.cancel()
        self._growthSave = None

    def lock(self) -> None:
        """
        Take the data directory's lock again if L{close} released it (a
        node restarted); nothing without a data directory.

        @raise DataDirInUse: another node holds it.
        """
        if self._datadir is not None:
            self._datadir.lock()

    def close(self) -> None:
        """
        Release the data directory's lock, once the last write is done
        (the node's stop): another node may use the directory now.
        """
        if self._datadir is not None:
            self._datadir.unlock()

    def _write(self, name: str, kind: tuple[str, int], body) -> None:
        try:
            self._datadir.save_document(name, kind[0], kind[1], body)
        except OSError as e:
            log.error(
                "Cannot save {path}: {error}", path=str(self._datadir.path / name), error=e
            )


def _bookFrom(body, now: float, kind: BookKind, rng: random.Random):
    """
    The address manager saved in C{body}. A bitp2p 0.1 peers file
    (C{{"legacy": [...]}} from L{_upgradePeers}) is imported: its
    addresses go to "new", those that worked to "tried".
    """
    if isinstance(body, dict) and "legacy" in body:
        old = AddressBook.from_json(body["legacy"], rng=rng)
        if kind.simple:
            return old
        book = kind.new()
        for info in old:
            book.add([(info.address, info.last_seen)], info.address, now)
            if info.last_success:
                book.good(info.address, info.last_success)
        return book
    return kind.fromJson(body)


def _upgradePeers(old: object) -> dict:
    """
    Read a bitp2p 0.1 peers file (one JSON object, version 1).

    @raise ValueError: if it is not one.
    """
    if not isinstance(old, dict) or old.get("version") != 1 or not isinstance(
        old.get("addresses"), dict
    ):
        raise ValueError("not a bitp2p peers file")
    return {"legacy": old["addresses"]}


__all__ = ["BookKind", "Loaded", "NodeStore"]
