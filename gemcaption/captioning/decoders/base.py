"""What every caption decoder shares: full logits for inference, packed logits for training.

A decoder implements ``hidden_states((features, tokens))`` -> (B*K, T, dim) and owns an
``output_dense`` layer. ``call`` turns every position into logits (B, K, T, vocab), which is
what validation metrics elsewhere and generation need. Training and validation loss instead
keep only the positions whose target is a real token (about half of them on Flickr8k: see
benchmarks/results/train_step_cost.json) before the vocabulary-sized output layer:
the loss and its gradients are exactly those of the masked cross-entropy over full logits,
at about half the cost of the most expensive layer.

Under a ``tf.distribute`` strategy with several replicas each replica's mean is weighted by its
share of the global batch's real tokens before the optimizer sums the gradients over replicas, so
a step is exactly the step of one process on the whole global batch.
"""

import keras
from keras import ops


class CaptionDecoder(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="masked_accuracy")
        # a training setting, not part of the model (not in get_config): set before compile()
        self.label_smoothing = 0.0

    def hidden_states(self, inputs, training=False):
        """``(features (B, G, C), tokens (B, K, T))`` -> (B*K, T, dim), before the output layer."""
        raise NotImplementedError

    def packed_hidden_states(self, inputs, keep, training=False):
        """Hidden states (N, dim) of the token positions ``keep`` (indices into the flattened
        (B, K, T) tokens). A decoder that can skip padding altogether overrides this."""
        hidden = self.hidden_states(inputs, training=training)
        return ops.take(ops.reshape(hidden, (-1, ops.shape(hidden)[-1])), keep, axis=0)

    def call(self, inputs, training=False):
        """``(features (B, G, C), tokens (B, K, T))`` -> logits (B, K, T, vocab)."""
        tokens = inputs[1]
        b, k, t = ops.shape(tokens)[0], ops.shape(tokens)[1], ops.shape(tokens)[2]
        logits = self.output_dense(self.hidden_states(inputs, training=training))
        return ops.reshape(logits, (b, k, t, self.vocab_size))

    def packed_loss(self, inputs, targets, training=False):
        """Mean cross-entropy and token accuracy over the non-padding targets, and their count.

        With ``training=True`` and ``label_smoothing`` = e > 0 the loss is the cross-entropy
        against (1 - e) * one-hot + e / vocab (Szegedy et al. 2016): (1 - e) * CE + e * mean over
        the vocabulary of -log p. Validation (``training=False``) always reports plain CE. The
        output layer runs a chunk of tokens at a time (:mod:`.output_loss`)."""
        from .output_loss import output_cross_entropy

        self._build_once(inputs)  # the output layer's kernel must exist
        targets = ops.reshape(ops.cast(targets, "int32"), (-1,))
        keep = ops.where(ops.not_equal(targets, 0))[0]
        targets = ops.take(targets, keep)
        hidden = self.packed_hidden_states(inputs, keep, training=training)
        layer = self.output_dense
        total, hits = output_cross_entropy(
            hidden,
            layer.kernel,
            layer.bias,
            targets,
            smoothing=self.label_smoothing if training else 0.0,
            gradients_now=training,
        )
        # means that are 0, not NaN, over no tokens (a worker's share of a last, small batch can be empty)
        count = ops.shape(targets)[0]
        over = ops.cast(ops.maximum(count, 1), total.dtype)
        return total / over, hits / over, count

    def _track(self, loss, accuracy, count):
        count = ops.cast(count, "float32")
        self.loss_tracker.update_state(loss, sample_weight=count)
        self.accuracy_tracker.update_state(accuracy, sample_weight=count)
        logs = {"loss": self.loss_tracker.result(), "masked_accuracy": self.accuracy_tracker.result()}
        if _replicas() > 1:  # Keras (3.15) averages a step's logs over workers along axis 0: give it one
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    def _build_once(self, inputs):
        # Keras records the input shapes it needs for saving only when the model itself is called;
        # the training steps use hidden_states, so call it once while tracing (nothing uses the
        # result, so the traced graph drops it).
        if not self.built:
            self(inputs, training=False)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15) builds a model under a tf.distribute strategy from one batch that it first
        # reduces across the workers, which fails for nested inputs like ours under
        # MultiWorkerMirroredStrategy. Captioner.fit builds the decoder and its optimizer before fit,
        # so there is nothing left to build.
        if self.built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        import tensorflow as tf

        inputs, targets = data[0], data[1]
        with tf.GradientTape() as tape:
            loss, accuracy, count = self.packed_loss(inputs, targets, training=True)
            weighted = loss * _share_of_all_tokens(count)  # inside the tape: its gradient is recorded
        gradients = tape.gradient(weighted, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._track(loss, accuracy, count)

    def test_step(self, data):
        inputs, targets = data[0], data[1]
        return self._track(*self.packed_loss(inputs, targets, training=False))

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]


def _replicas() -> int:
    """Replicas training in sync (1 outside a multi-replica ``tf.distribute`` strategy)."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def _share_of_all_tokens(count):
    """``count`` over the real tokens of all replicas this step (1 without a multi-replica strategy)."""
    import tensorflow as tf

    if _replicas() == 1:
        return 1.0
    context = tf.distribute.get_replica_context()
    count = ops.cast(count, "float32")
    return count / context.all_reduce(tf.distribute.ReduceOp.SUM, count)
