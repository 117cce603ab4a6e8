"""
Every tunable number of bitp2p, in one place, with its unit in its name: the
node's and the operator tools'. (The address manager's internal constants,
Bitcoin Core's and not meant to be tuned, stay private in L{bitp2p.addrman};
the modules that use a number here import it from here.)

Protocol numbers come from the wire contract (PROTOCOL.md); policy numbers follow
Bitcoin Core's net/addrman defaults where the contract is silent.

It owns the numbers only; it imports no other module of bitp2p but the
version.
"""

from bitp2p._version import __version__

PROTOCOL_VERSION = 1
USER_AGENT = f"/bitp2p:{__version__}/"

# Framing
MAX_MESSAGE_BYTES = 1024 * 1024  # longest accepted line, delimiter excluded
# A line still unfinished LINE_GRACE_S after its first byte must have grown by
# LINE_MIN_BYTES_PER_S on average, or the connection is closed: a line
# dribbled a byte at a time holds a slot and its buffer for nothing (1 MiB
# at that rate takes 17 minutes; a Tor circuit does 50 KB/s or more).
LINE_GRACE_S = 10
LINE_MIN_BYTES_PER_S = 1024
# Bytes written to a peer while its send buffer stays full (the peer is not
# reading) before it is dropped. Room for a few of the largest messages;
# Bitcoin Core's -maxsendbuffer is 1000 KB.
MAX_SEND_BUFFER_BYTES = 4 * 1024 * 1024

# Message field limits
NODE_ID_MAX_CHARS = 64
USER_AGENT_MAX_CHARS = 256
MAX_ADDR_ENTRIES = 1000  # an addr with more entries is a violation
NONCE_MAX = 2**64 - 1

# Connections
DEFAULT_PORT = 5000
DEFAULT_INTERFACE = "0.0.0.0"
MAX_OUTBOUND = 8
MAX_CONNECTIONS = 125
# Built-in bootstrap list of the original design: 127.0.0.1 ports 5000-5003,
# less the node's own port.
DEFAULT_SEED_HOST = "127.0.0.1"
DEFAULT_SEED_PORTS = (5000, 5001, 5002, 5003)
# listen() backlog: Twisted's default of 50 drops connection bursts (the
# kernel caps it at net.core.somaxconn, 4096 on current Linux).
LISTEN_BACKLOG = 1024
CONNECT_TIMEOUT_S = 10

# Timers
HANDSHAKE_TIMEOUT_S = 60
# A newcomer to a full node replaces an inbound connection still in its
# handshake after this long, before any established peer is considered.
STALE_HANDSHAKE_S = 10
# Within that grace, a newcomer to a full node still replaces a connection
# in its handshake whose network group has been connecting more than
# INBOUND_CHURN_RATIO times as often as the newcomer's own (bitp2p.arrivals:
# arrivals counted with this half-life, for at most this many groups), so
# that an attacker reconnecting the moment it is closed cannot keep every
# slot filled with young handshakes (issue 16).
INBOUND_CHURN_HALF_LIFE_S = 60
INBOUND_CHURN_SOURCES = 4096
INBOUND_CHURN_RATIO = 2
PING_INTERVAL_S = 30
PING_TIMEOUT_S = 90  # a pong later than this ends the connection
INACTIVITY_TIMEOUT_S = 10 * 60  # nothing at all received for this long
MAINTENANCE_INTERVAL_S = 5  # how often the node tops up its outbound slots
ADVERTISE_INTERVAL_S = 10 * 60  # periodic self-advertisement to every peer
SAVE_INTERVAL_S = 15 * 60  # Bitcoin Core: DUMP_PEERS_INTERVAL
# Besides, the address book is saved this long after it has grown to twice
# what was last saved or loaded (at most log2(size) such saves): a node
# killed in its first quarter hour still comes back knowing more than its
# seeds.
GROWTH_SAVE_DELAY_S = 5
# When the address book already has addresses, seeds are only used if the node
# is still short of peers this long after start (Bitcoin Core waits likewise).
SEED_FALLBACK_S = 60
# Short of peers: fewer than this many established automatic outbound
# connections (Bitcoin Core skips its DNS seeds once it has 2 full-relay
# outbound peers, "P2P peers available"). While the node stays short, the
# fallback comes again, SEED_FALLBACK_S after the last one, then twice as
# long each time, up to SEED_RETRY_MAX_S apart (Core: DNSSEEDS_DELAY_MANY_PEERS);
# each one resolves the seed names again, so a fleet's pod that came first
# finds the pods that came after it. It stops once the node has its peers,
# and starts again (from SEED_FALLBACK_S) when an outbound peer goes.
SEED_ENOUGH_OUTBOUND = 2
SEED_RETRY_MAX_S = 5 * 60

# Address gossip
GETADDR_MAX_REPLY = 1000  # at most this many addresses in one answer
RELAY_MAX_ENTRIES = 10  # larger unsolicited addr messages are not relayed
RELAY_FANOUT = 2  # relay fresh addresses to this many other peers
# A fresh address new to the address manager (a newcomer's announcement)
# goes to every full outbound peer as well as to RELAY_FANOUT others: it
# then floods the reachable nodes along their outbound links (every node
# has 8, all to reachable nodes) and stops where it is known. With Bitcoin
# Core's 2 for every address, the same-peers-for-a-day rule stops it at a
# fraction of the network (52-73 % of a simulated 64k-node network). A
# node floods at most NOVEL_FLOOD_RATE_PER_S such addresses a second
# (a token bucket of NOVEL_FLOOD_BURST; a network of 20,000 reachable
# nodes with a tenth of them new every hour has 0.6 a second): past it,
# new addresses get the RELAY_FANOUT of any other, so that addresses made
# up by the thousand cannot be flooded through the network.
NOVEL_FLOOD_RATE_PER_S = 1.0
NOVEL_FLOOD_BURST = 60
RELAY_FRESH_S = 10 * 60  # an addr entry seen longer ago is stored but not relayed
# Addresses remembered per peer as already sent to it or heard from it, so
# that relaying never sends a peer what it knows (Bitcoin Core keeps 5000 in
# a rolling Bloom filter per peer). Oldest forgotten first.
KNOWN_ADDRESSES_PER_PEER = 5000
# Token bucket for addresses accepted from one peer (Bitcoin Core:
# MAX_ADDR_RATE_PER_SECOND = 0.1, MAX_ADDR_PROCESSING_TOKEN_BUCKET = 1000).
ADDR_RATE_PER_S = 0.1
ADDR_BUCKET_TOKENS = 1000
# What a new connection's bucket holds: room for the peer's announcement of
# itself, no more (Bitcoin Core's Peer::m_addr_token_bucket{1.0}). Every
# connection starts afresh, so anything more is given again on each
# reconnect: with 10, an attacker reconnecting 40 times a second placed 400
# addresses a second.
ADDR_INITIAL_TOKENS = 1
# An addr entry whose time is further than this in the future is clamped.
ADDR_FUTURE_SLACK_S = 10 * 60

# Address manager (bitp2p.addrman), Bitcoin Core's addrman numbers
ADDRMAN_NEW_BUCKET_COUNT = 1024
ADDRMAN_TRIED_BUCKET_COUNT = 256
ADDRMAN_BUCKET_SIZE = 64
ADDRMAN_TRIED_BUCKETS_PER_GROUP = 8  # one address group reaches at most 8 tried buckets
ADDRMAN_NEW_BUCKETS_PER_SOURCE_GROUP = 64  # one source group reaches at most 64 new buckets
ADDRMAN_NEW_BUCKETS_PER_ADDRESS = 8  # most new buckets one address may sit in
ADDRMAN_HORIZON_S = 30 * 24 * 3600  # not seen for this long: terrible
ADDRMAN_RETRIES = 3  # failed attempts, never successful: terrible
ADDRMAN_MAX_FAILURES = 10  # failed attempts ...
ADDRMAN_MIN_FAIL_S = 7 * 24 * 3600  # ... with no success for this long: terrible
ADDRMAN_REPLACEMENT_S = 4 * 3600  # a tried entry that worked this recently is kept
ADDRMAN_TEST_WINDOW_S = 40 * 60  # an untested tried collision is resolved after this
ADDRMAN_SET_TRIED_COLLISION_SIZE = 10  # pending tried collisions kept
# getaddr answers: min(GETADDR_MAX_REPLY, max(23 % of the table, min(size, 100)))
GETADDR_MAX_PCT = 23
GETADDR_MIN_COUNT = 100

# The simple address book (bitp2p.addrbook), kept as a baseline
ADDRBOOK_MAX_ENTRIES = 20000
RETRY_BASE_S = 2  # first retry after a failed attempt
RETRY_MAX_S = 10 * 60  # longest wait between attempts to one address
ADDR_HORIZON_S = 30 * 24 * 3600  # not seen for this long: not worth sharing
ADDR_MAX_FAILURES = 10  # failures with no success: not worth sharing

# Connection manager
OUTBOUND_SELECT_TRIES = 100  # addresses drawn per maintenance round at most
RECENT_TRY_S = 10 * 60  # an address tried this recently is skipped ...
RECENT_TRY_TRIES = 30  # ... by the first 30 draws of a round (Bitcoin Core)
FEELER_INTERVAL_S = 2 * 60  # mean time between feeler connections
ADDR_FETCH_TIMEOUT_S = 30  # ... and an addr-fetch (--seednode) connection this long
MANUAL_RETRY_MAX_S = 60  # --addnode / --connect peers are redialed at most this far apart
# An inbound connection is refused when its network group already holds
# this share of the inbound slots (1/8: 14 of the default 117), or 4 if more.
INBOUND_GROUP_SHARE = 8
INBOUND_GROUP_MIN = 4
# Addresses relayed by others are stored as seen this much earlier than
# they say (Bitcoin Core's 2 h penalty); an addr entry without a time, or
# with one too far in the future, is stored as seen 5 days ago.
ADDR_TIME_PENALTY_S = 2 * 3600
ADDR_UNKNOWN_AGE_S = 5 * 24 * 3600

# Misbehaviour: violations per host before it is discouraged (in memory), and
# for how long; default length of a ban.
DISCOURAGE_THRESHOLD = 5
DISCOURAGE_S = 24 * 3600
DEFAULT_BAN_S = 24 * 3600

# IP literals whose parse is remembered (bitp2p.address, bitp2p.banman).
# Only strings that can be IP literals (or, in bitp2p.address, onion, I2P
# and CJDNS hosts, at most 62 characters) are remembered, so each cache
# holds at most HOST_CACHE_SIZE keys of at most 62 characters (about 2 MB):
# the longest IPv6 literal, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
# is 45 characters; a zone ("fe80::1%eth0", IPv6 only) at most
# MAX_ZONE_CHARS; an onion host 62.
HOST_CACHE_SIZE = 16384
# Addresses built (Address.of) and parsed (parse_address) are remembered too,
# shared as one immutable object: a known node's address comes back in every
# addr message that tells of it. Only valid addresses are remembered (a wire
# form is at most 70 characters), at most ADDRESS_CACHE_SIZE of each.
ADDRESS_CACHE_SIZE = 16384
# The local hosts of connections (and our own addresses as peers see them)
# that the connection manager and discovery look at once and remember: a
# node has a few (those it listens on or dials from), this is a bound.
LOCAL_HOSTS_REMEMBERED = 64
MAX_IP_CHARS = 45
MAX_ZONE_CHARS = 15

# Persistence file names inside --datadir
# Gossip (bitp2p.gossip): links a broadcast may travel, how long a message id
# is remembered, and the size over which messages are announced, not pushed.
GOSSIP_HOPS = 16
GOSSIP_SEEN_S = 10 * 60
GOSSIP_SEEN_MAX = 100_000
GOSSIP_PUSH_MAX_BYTES = 4096
# Gossip taken from one peer: this many messages (or announced ids) a second
# on average, and up to GOSSIP_BURST_S seconds' worth at once.
GOSSIP_RATE_PER_S = 100
GOSSIP_BURST_S = 10

NODE_ID_FILE = "node_id"
LOCK_FILE = ".lock"  # held by the node using the directory
PEERS_FILE = "peers.json"
BANLIST_FILE = "banlist.json"
ANCHORS_FILE = "anchors.json"
PINS_FILE = "pins.json"

# The control API (bitp2p.control): its default port, and the files the node
# writes to its data directory while it runs: the cookie (the API's secret)
# and the port the API listens on, for bitp2p-cli to find.
DEFAULT_RPC_PORT = 5332
COOKIE_FILE = ".cookie"
RPC_PORT_FILE = ".rpcport"

# Per-connection bookkeeping (bitp2p.peer)
CLOSE_GRACE_S = 5  # how long a closing connection may take to flush before it is dropped
# The most keys of a peer's recv_per_type (and of its send_per_type): a type
# first seen once there are MAX_COUNTED_TYPES - 1 of them is counted under
# "*other*", so that a peer cannot grow the tables without limit.
MAX_COUNTED_TYPES = 64
# Most (direction, type) keys in the node's traffic totals: peers bound their
# own types, but a stream of peers each sending new ones must not grow it.
MAX_TRAFFIC_KEYS = 512

# Gossip's limits (bitp2p.gossip)
MAX_INV_ITEMS = 1000  # entries in one inv, getdata or notfound
GETDATA_TIMEOUT_S = 10.0  # then the next announcer is asked
MAX_ANNOUNCERS = 8  # announcers remembered per requested id
MAX_IN_FLIGHT_PER_PEER = 5000  # ids requested from one peer and not yet answered
MAX_ANNOUNCED_PER_PEER = 50_000  # ids we announced to one peer and it may ask for
GOSSIP_STORE_MAX_BYTES = 64 * 1024 * 1024  # announced payloads kept to serve

# TLS (bitp2p.tls)
MAX_PINS = 10_000  # address -> node id pins kept (trust on first use)

# The simple address book (bitp2p.addrbook)
# Chance that select() picks among addresses that worked before, when there
# are also addresses that never did.
WORKED_PREFERENCE = 0.8
# Never-successful addresses with this many failures are not shared.
NEVER_WORKED_MAX_FAILURES = 3

# Bans (bitp2p.banman)
# Hosts remembered as discouraged at most; beyond, the host discouraged
# longest ago is forgotten (Bitcoin Core keeps 50000 in a rolling Bloom
# filter).
MAX_DISCOURAGED = 50000

# bitp2p-cli (bitp2p.ops.cli): how long a call may take
CLI_TIMEOUT_S = 30

# The console (bitp2p.ops.console)
CONSOLE_HISTORY_LINES = 500  # commands kept between runs

# The dashboard (bitp2p.ops.web)
# At most this many known addresses are listed in a snapshot (and drawn).
DASHBOARD_MAX_KNOWN = 256
# How long a form post waits for its action (a dial, a disconnection)
# before answering anyway.
DASHBOARD_ACTION_WAIT_S = 5.0
# The longest form field taken.
DASHBOARD_MAX_FIELD = 512

# The control API (bitp2p.ops.control)
# Failed authentications from one host: past AUTH_FAILURES_ALLOWED in
# AUTH_FAILURE_WINDOW_S, each 401 is sent AUTH_FAILURE_DELAY_S late.
# At most AUTH_TRACKED_HOSTS hosts are remembered (the oldest forgotten).
AUTH_FAILURES_ALLOWED = 10
AUTH_FAILURE_WINDOW_S = 60.0
AUTH_FAILURE_DELAY_S = 2.0
AUTH_TRACKED_HOSTS = 4096

# The longest request body taken; a longer one is read and dropped, and
# answered 413.
MAX_BODY_BYTES = 1024 * 1024
# HTTP connections open at once at most (each may hold a body of
# MAX_BODY_BYTES). When all are taken, a newcomer takes the place of the
# oldest connection that has not yet made an authenticated request; with
# none such, it is closed as it arrives.
MAX_HTTP_CONNECTIONS = 64
# HTTP connections open at once from one client address at most (all UNIX
# socket clients count as one address); past it, a newcomer takes the place
# of that address's oldest connection that has not yet made an
# authenticated request, or is closed as it arrives.
MAX_HTTP_CONNECTIONS_PER_HOST = 8
# A request's headers and body must all have arrived within this long of its
# first byte (for a connection's first request: of the connection itself);
# bytes trickling in do not extend it. Past it the client gets a 408 and the
# connection is closed.
HTTP_REQUEST_DEADLINE_S = 10
# A connection idle between requests is closed after this long.
HTTP_IDLE_TIMEOUT_S = 60
# Most calls in one JSON-RPC batch; a longer batch is refused whole.
MAX_BATCH_CALLS = 100
# A batch is served in slices of at most about this much of the reactor's
# time, the next slice on a later turn, so that other connections are served
# meanwhile.
RPC_SLICE_S = 0.05

# Logs (bitp2p.logs)
# A line that anyone who can reach the node can make it write at will (a
# refused connection, a protocol violation, a wrong password) is written
# once; more of its kind within LOG_SUMMARY_INTERVAL_S are counted, and one
# line per interval says how many there were, from how many hosts. At most
# LOG_SUMMARY_MAX_KINDS kinds and LOG_SUMMARY_MAX_HOSTS distinct hosts per
# kind are remembered.
LOG_SUMMARY_INTERVAL_S = 60
LOG_SUMMARY_MAX_KINDS = 64
LOG_SUMMARY_MAX_HOSTS = 1024
# twistd's log file (-l FILE): rotated at LOG_ROTATE_BYTES, and only the
# LOG_MAX_FILES most recent rotated files are kept (twistd alone keeps them
# all): at most (LOG_MAX_FILES + 1) * LOG_ROTATE_BYTES on disk.
LOG_ROTATE_BYTES = 10_000_000
LOG_MAX_FILES = 10


# -- Bitcoin networks (bitp2p.bitcoin) -------------------------------------------

NETWORK = "bitp2p"  # the default network: the protocol's own JSON lines
# Bitcoin Core's timers (net_processing.cpp PING_INTERVAL, net.h
# TIMEOUT_INTERVAL), the defaults on a Bitcoin network.
BITCOIN_PING_INTERVAL_S = 2 * 60
BITCOIN_PING_TIMEOUT_S = 20 * 60
BITCOIN_INACTIVITY_TIMEOUT_S = 20 * 60

# The crawler (bitp2p.bitcoin.crawl)
CRAWL_CONCURRENCY = 64  # connections open at once
CRAWL_RATE_PER_S = 50.0  # new connections a second at most
# Connecting, and the handshake (connection to verack), must each end
# within this long.
CRAWL_TIMEOUT_S = 15.0
# After getaddr, the answer (and the pong) are awaited this long. Bitcoin
# Core sends its answer on its addr timer (a Poisson delay, 30 s on average
# after its first addr to the peer), so a peer may answer late.
CRAWL_ADDR_WAIT_S = 30.0
# ... but if no addr at all comes this long after getaddr (not even the
# peer's announcement of itself), the peer has none to give: a recent Core
# with an empty cache sends nothing; one with addresses answers at once.
CRAWL_ADDR_QUIET_S = 5.0
# Progress lines of "bitp2p crawl": this often on a terminal, and when the
# output is not one.
CRAWL_PROGRESS_TTY_S = 0.5
CRAWL_PROGRESS_LOG_S = 10.0

# A node fetches addresses in place of its feelers' plain tests (protocol
# 1.1: a feeler asks nothing) while its address manager learned within this
# long: grew from an answer (relayed gossip is not learning: with churn it
# makes every table grow every few minutes) by at least this share of the
# table (at least one address): in a big network with churn, most answers
# bring a straggler or two, which is not worth a getaddr every 2 minutes.
LEARNING_MIN_GROWTH = 0.01
# ... or LEARNING_MIN_GROWTH_LARGE of it once it holds
# FAST_LEARNING_MAX_ADDRESSES or more: there each fetch costs an answer of a
# quarter of a table (up to 1,000 addresses), and at 1 % a node among 2,000
# reachable ones went on fetching a few dozen stragglers at a time for a
# quarter of an hour after joining (docs/benchmarks.rst, 10d).
LEARNING_MIN_GROWTH_LARGE = 0.05
LEARNING_WINDOW_S = 10 * 60
# ... and fetches at a faster pace (about every FAST_FETCH_INTERVAL_S, from
# either table) while its address manager is small (under
# FAST_LEARNING_MAX_ADDRESSES) and learned within FAST_LEARNING_WINDOW_S: in a
# small network one getaddr answer is a whole table, so a few fetches make
# every node know every other within a couple of minutes. An attacker can
# only end that pace early (by filling the table), never keep a big table in it.
FAST_FETCH_INTERVAL_S = 15
FAST_LEARNING_WINDOW_S = 60
FAST_LEARNING_MAX_ADDRESSES = 1000
