"""edgerec: an embeddable, offline recommender served from an exported ONNX scoring core.

The runtime (this package) needs only numpy, onnxruntime, sqlite-utils and click;
the trainer (``edgerec.trainer``) and exporter (``edgerec.exporters``) need TensorFlow.
"""

__version__ = "0.1.0"

from .errors import EdgerecError  # noqa: E402
from .experiment import Experiment  # noqa: E402
from .explain import Explanation, Reason  # noqa: E402
from .recommender import Recommender  # noqa: E402
from .results import Explained, Recommendation, Recommendations  # noqa: E402

__all__ = ["EdgerecError", "Experiment", "Explained", "Explanation", "Reason",
           "Recommendation", "Recommendations", "Recommender", "__version__"]
