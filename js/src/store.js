// The edgerec SQLite store, read from Node (better-sqlite3): a user's history, the
// retired items and the popularity ranking, with the same SQL as the Python store
// (runtime/store.py), so both runtimes see the same lists.

import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { StoreError } from "./errors.js";

// Store schema versions this runtime reads (it reads only the events and items tables,
// which both have).
const SCHEMA_VERSIONS = ["1", "2"];

// Every event of the user, any type and weight, repeats included, newest first: the
// (user_id, ts DESC, item_id) index's order (events without a timestamp last).
const HISTORY = "SELECT json_group_array(item_id) AS items FROM events " +
  "INDEXED BY events_user_history WHERE user_id = ?";
const INACTIVE = "SELECT item_id FROM items WHERE active = 0";
const ITEMS_VERSION = "SELECT value FROM meta WHERE key = 'items_version'";
// Distinct users per item over active (or catalogue-less) items; ties by item id.
const POPULAR = "SELECT e.item_id, COUNT(DISTINCT e.user_id) AS score FROM events e " +
  "LEFT JOIN items i ON i.item_id = e.item_id WHERE ifnull(i.active, 1) = 1 " +
  "GROUP BY e.item_id ORDER BY score DESC, e.item_id LIMIT ?";

/** An edgerec store file opened for reading. */
export class Store {
  /**
   * @param {string} path  an existing store (made by `edgerec ingest` or the Python API)
   * @param {{readonly?: boolean}} [options]  readonly: open the file read-only
   */
  constructor(path, options = {}) {
    if (!existsSync(path)) throw new StoreError(`${path}: store not found (create one with \`edgerec ingest\`)`);
    this.path = path;
    try {
      this.db = new Database(path, { readonly: Boolean(options.readonly), fileMustExist: true });
      this.db.pragma("busy_timeout = 30000");
      this.checkSchema();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError(`${path}: not an edgerec store (${/** @type {Error} */ (err).message})`);
    }
    this.historyQuery = this.db.prepare(HISTORY).pluck();
    this.inactiveQuery = this.db.prepare(INACTIVE).pluck();
    this.itemsVersionQuery = this.db.prepare(ITEMS_VERSION).pluck();
    this.popularQuery = this.db.prepare(POPULAR).raw();
    /** @type {{version: unknown, items: Set<string>}|null} */
    this.inactive = null;
  }

  checkSchema() {
    const tables = /** @type {string[]} */ (this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all());
    if (!tables.includes("meta")) {
      throw new StoreError(`${this.path}: not an edgerec store (tables: ${tables.sort().join(", ") || "none"})`);
    }
    const found = /** @type {string} */ (this.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get());
    if (!SCHEMA_VERSIONS.includes(found)) {
      throw new StoreError(`${this.path}: store schema version ${found}, this edgerec reads ` +
        `version ${SCHEMA_VERSIONS.join(" or ")}`);
    }
  }

  /**
   * The user's item ids, newest first.
   * @param {string} userId
   * @returns {string[]}
   */
  history(userId) {
    return JSON.parse(/** @type {string} */ (this.historyQuery.get(userId)));
  }

  /**
   * Retired item ids, re-read only when the catalogue changed (its items_version).
   * @returns {Set<string>}
   */
  inactiveItems() {
    const version = this.itemsVersionQuery.get() ?? "0";
    if (this.inactive === null || this.inactive.version !== version) {
      this.inactive = { version, items: new Set(/** @type {string[]} */ (this.inactiveQuery.all())) };
    }
    return this.inactive.items;
  }

  /**
   * The `limit` most popular active items as (item id, distinct users).
   * @param {number} limit
   * @returns {Array<[string, number]>}
   */
  popular(limit) {
    return /** @type {Array<[string, number]>} */ (this.popularQuery.all(limit));
  }

  close() {
    this.db.close();
  }
}
