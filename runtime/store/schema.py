"""The store's tables and indexes, and how an older store is brought up to date.

Why not ``sqlite-utils``' ``create_table``/``create_index`` here: the store needs an
expression index (the dedupe identity uses ``ifnull(ts, -1)``), a partial index (retired
items) and a DESC column in the history index, and every statement must run inside the
store's own ``BEGIN IMMEDIATE`` transaction (``Store._script``: several processes may create
or upgrade one file at once), while sqlite-utils' table methods commit on their own
(``with conn:``), which would end that transaction half way. Plain DDL, all ``IF NOT
EXISTS``, is idempotent and says exactly what is on disk.
"""

SCHEMA_VERSION = 2

VERSION_1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    title TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    weight REAL NOT NULL,
    ts REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (user_id, item_id, event, ifnull(ts, -1));
CREATE INDEX IF NOT EXISTS events_user_history ON events (user_id, ts DESC, item_id);
CREATE INDEX IF NOT EXISTS events_item ON events (item_id);
"""
# Version 2 adds A/B experiments (``edgerec.store.experiments``): what was
# shown to whom, so outcomes can be attributed to it. Additive, so a version 1 store is
# upgraded in place, in one transaction, when it is opened.
EXPERIMENTS = """
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS impressions (
    id INTEGER PRIMARY KEY,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS impressions_attribution ON impressions (experiment, user_id, item_id, ts);
CREATE INDEX IF NOT EXISTS impressions_variant ON impressions (experiment, variant, ts);
"""

# Retired items are read after every write, so they have their own (tiny) partial index;
# version 1 stores made before it existed get it with the upgrade.
INACTIVE_INDEX = "CREATE INDEX IF NOT EXISTS items_inactive ON items (item_id) WHERE active = 0;"

# What a new store gets, in one transaction.
CREATE = (VERSION_1 + INACTIVE_INDEX + EXPERIMENTS
          + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');")

# Found version -> the additions that bring it to SCHEMA_VERSION (all IF NOT EXISTS, so two
# processes upgrading one file at once both succeed).
MIGRATIONS = {"1": INACTIVE_INDEX + EXPERIMENTS}
