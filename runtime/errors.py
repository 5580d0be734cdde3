"""One exception family, so the CLI can catch user-facing errors in one place.

Every message is a single line that names the file, row or field at fault.
"""


class EdgerecError(Exception):
    """Base class of every error edgerec raises on purpose."""


class InputError(EdgerecError):
    """A file, row or field given by the user cannot be used."""


class StoreError(EdgerecError):
    """The SQLite store is missing, locked, of another schema version, or not a store."""


class BundleError(EdgerecError):
    """A model bundle is missing, incomplete, corrupted or of another format version."""


class ProviderError(EdgerecError):
    """The requested ONNX Runtime execution provider cannot be used."""


class UnknownItemError(EdgerecError):
    """An item id is not in the model or the catalogue."""
