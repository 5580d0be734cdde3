// One error family, as in the Python runtime (runtime/errors.py): every message is one
// line naming the file, field or value at fault, so an app can show it as it is.

export class EdgerecError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** A request argument cannot be used. */
export class InputError extends EdgerecError {}

/** The SQLite store is missing, of another schema version, or not a store. */
export class StoreError extends EdgerecError {}

/** A bundle is missing, incomplete, corrupted or of another format version. */
export class BundleError extends EdgerecError {}
