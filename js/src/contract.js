// The bundle contract as JavaScript constants: the same names and values as
// runtime/contract.py (tests/test_js_runtime.py checks every one of them), described
// for other languages in docs/bundle-contract.md.

export const FORMAT_VERSION = 1;

export const INPUT_USERS = "users";
export const INPUT_HISTORY = "history";
export const INPUT_EXCLUDE = "exclude";
export const INPUT_K = "k";
export const INPUT_ITEM_MASK = "item_mask";

export const OUTPUT_ITEMS = "top_items";
export const OUTPUT_SCORES = "top_scores";

export const UNKNOWN_USER = -1;

export const MODEL_FILE = "model.onnx";
export const MANIFEST_FILE = "manifest.json";

export const M_FORMAT_VERSION = "format_version";
export const M_EDGEREC_VERSION = "edgerec_version";
export const M_MODEL_KIND = "model_kind";
export const M_USER_IDS = "user_ids";
export const M_ITEM_IDS = "item_ids";
export const M_DIMS = "dims";
export const M_TRAINING = "training";
export const M_METRICS = "metrics";
export const M_ONNX = "onnx";

export const REQUIRED_KEYS = [
  M_FORMAT_VERSION, M_EDGEREC_VERSION, M_MODEL_KIND, M_USER_IDS, M_ITEM_IDS,
  M_DIMS, M_TRAINING, M_METRICS, M_ONNX,
];

// What `edgerec export-web` writes beside the bundle files (edgerec.web.CATALOGUE_FILE).
export const CATALOGUE_FILE = "catalogue.json";
