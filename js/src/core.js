// What Node and the browser share: opening a bundle on an ONNX Runtime module, building a
// request's inputs, scoring, mapping results back to ids, and the popularity fallback.
// The platform modules (node.js, browser.js) only read bytes and pass in their `ort`
// (onnxruntime-node or onnxruntime-web: the same onnxruntime-common API), so the two can
// never build a request differently. The rules are those of the Python runtime
// (runtime/inputs.py, runtime/recommender.py), written down in docs/bundle-contract.md.

import * as C from "./contract.js";
import { BundleError, InputError } from "./errors.js";

/**
 * @typedef {object} Catalogue  What `edgerec export-web` writes to catalogue.json.
 * @property {Object<string, string>} [titles]  item id -> title
 * @property {Array<[string, number]>} [popular]  (item id, distinct users), most popular first
 * @property {string[]} [retired]  item ids never to recommend
 *
 * @typedef {object} BundleSource  A bundle already in memory (e.g. fetched by an app).
 * @property {object} manifest  the parsed manifest.json
 * @property {Uint8Array} modelBytes  the model.onnx file
 * @property {Catalogue} [catalogue]
 *
 * @typedef {object} Request
 * @property {string|null} [userId]  the user's id in the bundle, or null for a visitor
 * @property {string[]} [history]  item ids the user interacted with, newest first
 * @property {number} [n]  how many items (default 10)
 * @property {string[]} [exclude]  never these item ids
 * @property {string[]} [include]  only these item ids
 *
 * @typedef {{itemId: string, score: number}} Recommendation
 * @typedef {{userId: string|null, fallback: boolean, items: Recommendation[]}} Recommendations
 *   `fallback`: the model cannot score this user (unknown, and no usable history for a
 *   kind that folds in), so the items are the most popular ones instead.
 *
 * @typedef {object} Sources  Where a request's retired items and popularity come from.
 * @property {Set<string>} retired
 * @property {(limit: number) => Array<[string, number]>} popular  the top `limit` of the ranking
 */

/** Items of the popularity ranking read first; the fallback reads more only when a filter needs it. */
const POPULAR_FIRST = 100;
// Item weights (n_items * dim floats) up to which one thread scores fastest (as in Python).
const SMALL_MODEL_WEIGHTS = 1 << 22;

/**
 * The manifest, checked to be complete and of the format this runtime reads.
 * @param {any} manifest
 * @param {string} where  the file or URL, for error messages
 */
export function checkManifest(manifest, where) {
  if (manifest === null || typeof manifest !== "object") {
    throw new BundleError(`${where}: unreadable manifest (not a JSON object)`);
  }
  const version = manifest[C.M_FORMAT_VERSION];
  if (version !== C.FORMAT_VERSION) {
    throw new BundleError(`${where}: bundle format version ${version}, this edgerec reads ` +
      `version ${C.FORMAT_VERSION}`);
  }
  const missing = C.REQUIRED_KEYS.filter((key) => !(key in manifest));
  if (missing.length) throw new BundleError(`${where}: manifest lacks ${missing.join(", ")}`);
  return manifest;
}

/** An opened, verified bundle: its manifest, id maps, catalogue and ONNX Runtime session. */
export class Bundle {
  /**
   * @param {any} ort  onnxruntime-node or onnxruntime-web
   * @param {any} session  an ort.InferenceSession over the scoring core
   * @param {any} manifest
   * @param {Catalogue} catalogue
   * @param {string} source
   */
  constructor(ort, session, manifest, catalogue, source) {
    this.ort = ort;
    this.session = session;
    this.manifest = manifest;
    this.catalogue = catalogue;
    this.source = source;
    /** @type {string[]} dense index -> item id */
    this.itemIds = manifest[C.M_ITEM_IDS];
    /** @type {Map<string, number>} */
    this.itemIndex = new Map(this.itemIds.map((id, i) => [id, i]));
    /** @type {Map<string, number>} */
    this.userIndex = new Map(manifest[C.M_USER_IDS].map((id, i) => [id, i]));
    const dims = manifest[C.M_DIMS];
    this.nItems = dims.n_items;
    this.historyLength = dims.history_length;
    /** Whether the model scores users it was not trained on from their history. */
    this.foldsIn = Boolean(dims.folds_in);
    // item_mask is an input with a default (an initializer), which ONNX Runtime's
    // JavaScript API does not feed (it passes only `session.inputNames`): such cores get
    // masked-out items as exclusions, the same result (see `eligibility`).
    this.hasMask = session.inputNames.includes(C.INPUT_ITEM_MASK);
    this.retired = new Set(catalogue.retired ?? []);
    const popular = catalogue.popular ?? [];
    this.popular = (/** @type {number} */ limit) => popular.slice(0, limit);
  }

  get kind() {
    return this.manifest[C.M_MODEL_KIND];
  }

  /** @param {string} itemId */
  title(itemId) {
    return this.catalogue.titles?.[itemId] ?? itemId;
  }
}

/**
 * Verify the model bytes against the manifest and start an ONNX Runtime session.
 * @param {any} ort
 * @param {BundleSource} src
 * @param {{source: string, digest: ((bytes: Uint8Array) => Promise<string>)|null, threads?: number}} how
 *   `digest`: sha256 hex of the bytes (null: cannot verify here); `threads`: intra-op
 *   threads (default: one for small models, as the Python runtime chooses).
 */
export async function openWith(ort, src, how) {
  const manifest = checkManifest(src.manifest, how.source);
  const about = manifest[C.M_ONNX];
  if (how.digest && (await how.digest(src.modelBytes)) !== about.sha256) {
    throw new BundleError(`${how.source}: ${about.file ?? C.MODEL_FILE}: sha256 does not match ` +
      "the manifest (corrupted or partly copied bundle)");
  }
  const dims = manifest[C.M_DIMS];
  const threads = how.threads ?? (dims.n_items * dims.dim <= SMALL_MODEL_WEIGHTS ? 1 : 0);
  let session;
  try {
    session = await ort.InferenceSession.create(src.modelBytes, {
      graphOptimizationLevel: "all", logSeverityLevel: 3, enableMemPattern: false,
      ...(threads ? { intraOpNumThreads: threads } : {}),
    });
  } catch (err) {
    throw new BundleError(`${how.source}: ONNX Runtime cannot load the model ` +
      `(${String(/** @type {Error} */ (err).message).split("\n")[0]})`);
  }
  return new Bundle(ort, session, manifest, src.catalogue ?? {}, how.source);
}

/**
 * Top-n unseen, eligible items for one user, from the bundle alone: retired items and
 * popularity come from its catalogue.json (written by `edgerec export-web`), if any.
 * @param {Bundle} bundle
 * @param {Request} request
 * @returns {Promise<Recommendations>}
 */
export function recommend(bundle, request) {
  return recommendWith(bundle, request, { retired: bundle.retired, popular: bundle.popular });
}

/**
 * `recommend` with the retired items and popularity taken from `sources` (a store).
 * @param {Bundle} bundle
 * @param {Request} request
 * @param {Sources} sources
 * @returns {Promise<Recommendations>}
 */
export async function recommendWith(bundle, request, sources) {
  const { userId = null, history = [], n = 10 } = request;
  const { exclude, include } = checkRequest(request);
  const inputs = modelInputs(bundle, userId, history, eligibility(bundle, sources.retired, exclude, include));
  if (inputs === null) {
    const skip = new Set([...history, ...(exclude ?? [])]);
    const allowed = include ? new Set(include.filter((i) => !sources.retired.has(i))) : null;
    const items = popularPicks(sources.popular, n, skip, allowed, sources.retired);
    return { userId, fallback: true, items };
  }
  return { userId, fallback: false, items: await score(bundle, inputs, n) };
}

/** @param {Request} request */
function checkRequest(request) {
  const { n = 10, history = [], exclude, include } = request;
  if (!Number.isInteger(n) || n < 1) throw new InputError(`n must be at least 1, not ${n}`);
  if (!Array.isArray(history)) throw new InputError("history takes a list of item ids, newest first");
  for (const list of [exclude, include]) {
    if (list !== undefined && list !== null && !Array.isArray(list)) {
      throw new InputError("include and exclude take a list of item ids, not one string");
    }
  }
  return { exclude: exclude ?? null, include: include ?? null };
}

/**
 * (indices excluded for everyone, item_mask or null): retired and excluded items, and
 * for `include` a mask that keeps only the included (active) items, as in the Python
 * runtime's Catalogue.eligibility. A core without the item_mask input gets the masked-out
 * items as exclusions instead (the same result, computed the slower way).
 * @param {Bundle} bundle
 * @param {Set<string>} retired
 * @param {string[]|null} exclude
 * @param {string[]|null} include
 */
function eligibility(bundle, retired, exclude, include) {
  const extra = indices(bundle, [...retired, ...(exclude ?? [])]);
  if (include === null) return { extra, mask: null };
  const mask = new Float32Array(bundle.nItems).fill(-Infinity);
  for (const j of indices(bundle, include.filter((i) => !retired.has(i)))) mask[j] = 0;
  if (bundle.hasMask) return { extra, mask };
  mask.forEach((value, j) => { if (value === -Infinity) extra.push(j); });
  return { extra, mask: null };
}

/**
 * Dense indices of the ids the model knows, in order (unknown ids are dropped).
 * @param {Bundle} bundle
 * @param {Iterable<string>} ids
 */
function indices(bundle, ids) {
  const out = [];
  for (const id of ids) {
    const j = bundle.itemIndex.get(id);
    if (j !== undefined) out.push(j);
  }
  return out;
}

/**
 * The scoring core's inputs (docs/bundle-contract.md, "Building a request"), or null
 * when the model cannot score this user: unknown to it, and either it does not fold in
 * or none of the history's items are known to it.
 * @param {Bundle} bundle
 * @param {string|null} userId
 * @param {string[]} history  newest first
 * @param {{extra: number[], mask: Float32Array|null}} eligible
 */
export function modelInputs(bundle, userId, history, eligible) {
  const seen = indices(bundle, history);
  const user = userId === null ? undefined : bundle.userIndex.get(userId);
  if (user === undefined && !(bundle.foldsIn && seen.length)) return null;
  const recent = new BigInt64Array(bundle.historyLength).fill(BigInt(bundle.nItems));
  seen.slice(0, bundle.historyLength).forEach((j, pos) => { recent[pos] = BigInt(j); });
  return {
    user: BigInt(user ?? C.UNKNOWN_USER),
    history: recent,
    exclude: BigInt64Array.from([...seen, ...eligible.extra], BigInt),
    mask: eligible.mask,
  };
}

/**
 * One call of the scoring core; results without excluded slots (scored -inf, which come
 * last and only when fewer than k items are eligible).
 * @param {Bundle} bundle
 * @param {ReturnType<typeof modelInputs> & object} inputs
 * @param {number} n
 * @returns {Promise<Recommendation[]>}
 */
async function score(bundle, inputs, n) {
  const { Tensor } = bundle.ort;
  const k = Math.min(n, bundle.nItems);
  const feeds = {
    [C.INPUT_USERS]: new Tensor("int64", BigInt64Array.of(inputs.user), [1]),
    [C.INPUT_HISTORY]: new Tensor("int64", inputs.history, [1, inputs.history.length]),
    [C.INPUT_EXCLUDE]: new Tensor("int64", inputs.exclude, [1, inputs.exclude.length]),
    [C.INPUT_K]: new Tensor("int64", BigInt64Array.of(BigInt(k)), []),
  };
  if (inputs.mask) feeds[C.INPUT_ITEM_MASK] = new Tensor("float32", inputs.mask, [1, bundle.nItems]);
  const out = await bundle.session.run(feeds);
  const items = out[C.OUTPUT_ITEMS].data;
  const scores = out[C.OUTPUT_SCORES].data;
  const results = [];
  for (let r = 0; r < k && scores[r] !== -Infinity; r++) {
    results.push({ itemId: bundle.itemIds[Number(items[r])], score: scores[r] });
  }
  return results;
}

/**
 * The n most popular items not in `skip`, not retired and (if given) in `allowed`.
 * Reads a longer ranking until n qualify or the ranking is exhausted (as the Python
 * runtime's Snapshot.popular), so a filter never returns fewer than n items while n
 * eligible popular items exist.
 * @param {(limit: number) => Array<[string, number]>} ranking
 * @param {number} n
 * @param {Set<string>} skip
 * @param {Set<string>|null} allowed
 * @param {Set<string>} retired
 * @returns {Recommendation[]}
 */
export function popularPicks(ranking, n, skip, allowed, retired) {
  let need = Math.max(POPULAR_FIRST, 2 * (n + skip.size));
  for (;;) {
    const ranked = ranking(need);
    const picks = ranked
      .filter(([id]) => !skip.has(id) && !retired.has(id) && (allowed === null || allowed.has(id)))
      .slice(0, n);
    if (picks.length === n || ranked.length < need) {
      return picks.map(([itemId, score]) => ({ itemId, score }));
    }
    need *= 4;
  }
}
