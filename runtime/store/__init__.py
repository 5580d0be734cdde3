"""The SQLite store: the only package that speaks SQL, split by job.

``core``: the file, connections, transactions, events, catalogue and metadata filters
(``Store``, what every request path uses); ``schema``: tables and migrations;
``experiments``: A/B configs, impressions and the attribution query; ``snapshots``: the
store as of a moment, for replay, the update gate and training. ``from edgerec.store import
Store`` keeps working; the experiment and snapshot queries are functions that take a store.
"""

from . import experiments, snapshots
from .core import BUSY_TIMEOUT, PLURALS, EventRow, ItemRow, Store, fault
from .schema import SCHEMA_VERSION

__all__ = ["BUSY_TIMEOUT", "PLURALS", "SCHEMA_VERSION", "EventRow", "ItemRow", "Store",
           "experiments", "fault", "snapshots"]
