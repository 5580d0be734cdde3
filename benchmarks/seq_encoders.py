"""Which encoder for ``seq``: self-attention (what ships) against a GRU, on validation data.

    python benchmarks/seq_encoders.py DATA [--out DIR]

Issue 3 asks for a history model that is "a GRU, or a small self-attention encoder, chosen
by measured quality". Both encoders here share everything else: the windows, the
spectral item initialisation, log-popularity biases, tied input/output item table, full
softmax, adaptive sizes and dropout, early stopping. The GRU (GRU4Rec-style, one layer of
``dim`` units) reads the history oldest to newest, with padding masked, and position p's
output is the state after the items p..L-1, exactly what the attention encoder computes
for position p. Measured on the *train* part of the temporal split (``fit``'s own
holdout, i.e. validation), so the test set never chooses. DATA as for ``quality.py``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from quality import interactions_for  # noqa: E402


def gru_kind():
    """A ``seq`` whose encoder is a GRU (for this comparison only; not exported)."""
    import keras
    import tensorflow as tf

    from edgerec.trainer.sequence import SelfAttentionSequence

    class GRUSequence(SelfAttentionSequence):
        kind = "seq-gru"

        def _build_layers(self) -> None:
            super()._build_layers()
            self.gru = keras.layers.GRU(self.dim, return_sequences=True, seed=self.seed + 3)

        def encode(self, history, training=False, trimmed=False):
            keep = tf.not_equal(history, self.n_items)
            x = self.input_dropout(tf.gather(self.item_embedding, history), training=training)
            # Oldest first for the recurrence (padding, at the end of the newest-first
            # layout, comes first and is masked), then back to newest first.
            h = self.gru(tf.reverse(x, [1]), mask=tf.reverse(keep, [1]), training=training)
            return self.final_norm(tf.reverse(h, [1])) * tf.cast(keep, tf.float32)[:, :, None]

    return GRUSequence


def main(argv=None) -> dict:
    from edgerec.pipelines.evaluate import restrict_to_train, split
    from edgerec.trainer import MODEL_KINDS, fit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = interactions_for(args.data, args.out)
    train, _ = restrict_to_train(data, *split(data))
    MODEL_KINDS["seq-gru"] = gru_kind()
    results = {}
    try:
        for kind in ("seq", "seq-gru"):
            result = fit(train, kind, refit=False,
                         progress=lambda m, kind=kind: print(f"  [{kind}] {m}", file=sys.stderr, flush=True))
            results[kind] = {"validation ndcg@10": float(result.metrics["holdout"]["ndcg@10"]),
                             "epochs": result.params["trained_epochs"],
                             "seconds": round(result.seconds, 1)}
            print(kind, results[kind], flush=True)
    finally:
        del MODEL_KINDS["seq-gru"]
    command = "python benchmarks/seq_encoders.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "seq_encoders.json").write_text(json.dumps({"command": command, "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
