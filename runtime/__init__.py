"""edgerec: an embeddable, offline recommender served from an exported ONNX scoring core.

The runtime (this package) needs only numpy, onnxruntime, sqlite-utils and click;
the trainer (``edgerec.trainer``) and exporter (``edgerec.exporters``) need TensorFlow.
"""

from .errors import EdgerecError
from .experiment import Experiment
from .explain import Explanation, Reason
from .recommender import Recommender
from .results import Explained, Recommendation, Recommendations
from .version import __version__

__all__ = ["EdgerecError", "Experiment", "Explained", "Explanation", "Reason",
           "Recommendation", "Recommendations", "Recommender", "__version__"]
