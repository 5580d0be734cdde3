"""edgerec's version, in a module of its own so that any module may import it (the bundle
writer stamps it into manifests) without depending on the package's import order."""

__version__ = "0.1.0"
