"""The model kinds by name: what ``fit``, ``evaluate`` and the CLI's ``--model`` accept.

Apart from the base (``base``) so that the kinds, each in its own module, import their base
and this module imports them, with no cycle. A new kind is one module and one line here.
"""

from __future__ import annotations

from ..errors import InputError
from .als import AlternatingLeastSquares
from .base import ScoringModel
from .ease import EASE
from .gan import CollaborativeGAN
from .itemknn import ItemKNN
from .mf import MatrixFactorization
from .neumf import NeuralCollaborativeFiltering
from .rp3beta import RP3beta
from .sequence import SelfAttentionSequence
from .sparse_ease import SparseEASE

# Not a kind: every kind tried within a time budget and the best kept (``train.fit_auto``).
AUTO = "auto"

# In the order ``auto`` tries them: the fast ones first (seconds for als and ease), so that
# its time budget can only ever cut the slow ones short.
MODEL_KINDS: dict[str, type[ScoringModel]] = {
    AlternatingLeastSquares.kind: AlternatingLeastSquares,
    EASE.kind: EASE,
    ItemKNN.kind: ItemKNN,
    RP3beta.kind: RP3beta,
    SparseEASE.kind: SparseEASE,
    MatrixFactorization.kind: MatrixFactorization,
    NeuralCollaborativeFiltering.kind: NeuralCollaborativeFiltering,
    SelfAttentionSequence.kind: SelfAttentionSequence,
    CollaborativeGAN.kind: CollaborativeGAN,
}


def model_kind(name: str) -> type[ScoringModel]:
    """The class of kind ``name``; any other name is a one-line ``InputError`` listing the
    choices (``auto`` among them: callers that accept it test for it first)."""
    if name not in MODEL_KINDS:
        raise InputError(f"unknown model kind {name!r}; choose from "
                         f"{', '.join([*MODEL_KINDS, AUTO])}")
    return MODEL_KINDS[name]
