"""What a browser page needs to serve a bundle, as static files: ``export_web``.

A kiosk or web app runs the scoring core with onnxruntime-web (``js/``), without Python
and without the SQLite store, so everything it needs from them is written once, here:

- ``model.onnx`` and ``manifest.json`` (the id maps and dims), copied from the verified
  bundle. The manifest drops the entries of files a page never reads (item vectors,
  trainer state), so the output is itself a complete bundle that ``Bundle.open`` accepts.
- ``catalogue.json`` (``CATALOGUE_FILE``): ``titles`` (item id -> title), ``popular``
  ([item id, distinct users] pairs, most popular first: the ranking behind the Python
  runtime's fallback for users the model cannot score) and ``retired`` (item ids never
  to recommend). Without a store these are empty: tiles show ids, and a visitor without
  history sees the catalogue in model order.

The directory is written aside and renamed into place (``bundle.install_staged``), so a page
being served from it never loads half of an export.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from . import contract as C
from .bundle import Bundle, install_staged
from .store import Store

CATALOGUE_FILE = "catalogue.json"
# Ids per titles query: SQLite's parameter limit is 32766 on current builds, 999 on old ones.
_TITLE_CHUNK = 500


def export_web(bundle: str | Path, out: str | Path, store: str | Path | None = None) -> Path:
    """Write ``bundle``'s scoring core, id maps and (from ``store``) catalogue to ``out``.

    Returns ``out``. Titles, popularity and retired items are those of the store at export
    time; export again after the catalogue changes.
    """
    opened = Bundle.open(bundle)
    catalogue = _catalogue(opened, store)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        shutil.copyfile(opened.onnx_path, tmp / C.MODEL_FILE)
        manifest = {k: v for k, v in opened.manifest.items()
                    if k not in (C.M_VECTORS, C.M_TRAINER_STATE, C.M_ONNX_KNOWN)}
        manifest[C.M_ONNX] = {**manifest[C.M_ONNX], "file": C.MODEL_FILE}
        (tmp / C.MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
        (tmp / CATALOGUE_FILE).write_text(json.dumps(catalogue, ensure_ascii=False), encoding="utf-8")
        install_staged(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _catalogue(bundle: Bundle, path: str | Path | None) -> dict:
    """Titles of the model's and the popular items, the popularity ranking, retired items."""
    if path is None:
        return {"titles": {}, "popular": [], "retired": []}
    store = Store.open(path, create=False)
    try:
        popular = store.popular(store.summary()["items"])
        ids = list(dict.fromkeys([*bundle.manifest.item_ids, *(i for i, _ in popular)]))
        titles: dict[str, str] = {}
        for start in range(0, len(ids), _TITLE_CHUNK):
            titles.update(store.item_titles(ids[start:start + _TITLE_CHUNK]))
        return {"titles": titles, "popular": [[i, s] for i, s in popular],
                "retired": sorted(store.inactive_items())}
    finally:
        store.close()
