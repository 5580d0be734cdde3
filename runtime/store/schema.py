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

# The cold-start ranking (distinct users per item), kept by triggers in the same transaction
# as every event write, so the first unknown user's request reads ``items`` rows instead of
# a GROUP BY over every event (25 s over 1.1M events on a loaded 2-core machine, while a
# big ingest ran). Triggers live in the file, so any writer (an older edgerec, the sqlite3
# shell) keeps it right. Additive: a store without it gets it, filled once, when opened
# for writing; until then (read-only file, busy) ``popular`` counts as before. The cost is
# on writes: a 200K-row ingest took 1.9x as long (no index on ``users``: 3.7x with one).
POPULARITY = """
CREATE TABLE IF NOT EXISTS item_popularity (item_id TEXT PRIMARY KEY, users INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO item_popularity SELECT item_id, COUNT(DISTINCT user_id) FROM events GROUP BY item_id;
CREATE TRIGGER IF NOT EXISTS events_popularity_insert AFTER INSERT ON events
WHEN NOT EXISTS (SELECT 1 FROM events WHERE user_id = new.user_id AND item_id = new.item_id AND id <> new.id)
BEGIN
    INSERT INTO item_popularity VALUES (new.item_id, 1)
    ON CONFLICT (item_id) DO UPDATE SET users = users + 1;
END;
CREATE TRIGGER IF NOT EXISTS events_popularity_delete AFTER DELETE ON events
WHEN NOT EXISTS (SELECT 1 FROM events WHERE user_id = old.user_id AND item_id = old.item_id)
BEGIN
    UPDATE item_popularity SET users = users - 1 WHERE item_id = old.item_id;
END;
CREATE TRIGGER IF NOT EXISTS events_popularity_update AFTER UPDATE OF user_id, item_id ON events
WHEN old.user_id IS NOT new.user_id OR old.item_id IS NOT new.item_id
BEGIN
    UPDATE item_popularity SET users = users - 1 WHERE item_id = old.item_id AND NOT EXISTS (
        SELECT 1 FROM events WHERE user_id = old.user_id AND item_id = old.item_id);
    INSERT INTO item_popularity SELECT new.item_id, 1 WHERE NOT EXISTS (
        SELECT 1 FROM events WHERE user_id = new.user_id AND item_id = new.item_id AND id <> new.id)
    ON CONFLICT (item_id) DO UPDATE SET users = users + 1;
END;
"""

# What a new store gets, in one transaction.
CREATE = (VERSION_1 + INACTIVE_INDEX + EXPERIMENTS + POPULARITY
          + f"INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');")

# Found version -> the additions that bring it to SCHEMA_VERSION (all IF NOT EXISTS, so two
# processes upgrading one file at once both succeed).
MIGRATIONS = {"1": INACTIVE_INDEX + EXPERIMENTS + POPULARITY}
