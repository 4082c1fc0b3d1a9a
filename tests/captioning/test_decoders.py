import numpy as np
import pytest
from keras import ops

import gemcaption  # noqa: F401
from gemcaption.captioning.decoders import DECODERS, build_decoder
from gemcaption.captioning.training import masked_accuracy, masked_loss

VOCAB, SEQ = 30, 7


def make(name):
    return build_decoder(name, vocab_size=VOCAB, seq_len=SEQ, embed_dim=16, ff_dim=16, num_heads=2, dropout=0.0)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, 4, 12)).astype("float32")
    tokens = rng.integers(4, VOCAB, size=(3, 2, SEQ)).astype("int32")
    return features, tokens


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_logits_shape_has_one_row_per_caption(name, batch):
    features, tokens = batch
    logits = make(name)((features, tokens))
    assert tuple(logits.shape) == (3, 2, SEQ, VOCAB)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_incremental_steps_match_the_full_forward_pass(name, batch):
    features, tokens = batch
    decoder = make(name)
    full = np.asarray(decoder((features, tokens[:, :1])))[:, 0]
    state = decoder.start(features)
    for position in range(SEQ):
        logits, state = decoder.step(
            ops.convert_to_tensor(tokens[:, 0, position]), state, ops.convert_to_tensor(position)
        )
        np.testing.assert_allclose(np.asarray(logits), full[:, position], atol=1e-4)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoder_is_causal(name, batch):
    features, tokens = batch
    decoder = make(name)
    changed = tokens.copy()
    changed[:, :, 4:] = 5
    a = np.asarray(decoder((features, tokens)))
    b = np.asarray(decoder((features, changed)))
    np.testing.assert_allclose(a[:, :, :4], b[:, :, :4], atol=1e-5)
    assert not np.allclose(a[:, :, 4:], b[:, :, 4:])


def test_unknown_decoder_is_a_clear_error():
    with pytest.raises(ValueError, match="transformer"):
        build_decoder("gru", vocab_size=10)


def test_loss_and_accuracy_ignore_padding():
    rng = np.random.default_rng(1)
    targets = np.array([[[5, 6, 3, 0, 0]]], dtype="int32")
    logits = rng.normal(size=(1, 1, 5, 8)).astype("float32")
    other = logits.copy()
    other[:, :, 3:] = rng.normal(size=(1, 1, 2, 8))  # only padded positions differ
    assert float(masked_loss(targets, logits)) == pytest.approx(float(masked_loss(targets, other)))
    perfect = np.full((1, 1, 5, 8), -10.0, "float32")
    for t, tok in enumerate(targets[0, 0]):
        perfect[0, 0, t, tok if tok else 7] = 10.0  # padding positions predicted wrong on purpose
    assert float(masked_accuracy(targets, perfect)) == pytest.approx(1.0)
    # hand-computed cross-entropy over the three real tokens only
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.mean([logp[0, 0, t, targets[0, 0, t]] for t in range(3)])
    assert float(masked_loss(targets, logits)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_packed_training_loss_and_gradients_equal_the_masked_full_loss(name, batch):
    import tensorflow as tf

    features, tokens = batch
    tokens = tokens.copy()
    tokens[0, 1, 3:] = 0  # captions of different lengths: padding at different places
    tokens[2, 0, 5:] = 0
    inputs, targets = (features, tokens[:, :, :-1]), tokens[:, :, 1:]
    decoder = make(name)
    with tf.GradientTape() as tape:
        full = masked_loss(targets, decoder(inputs, training=False))
    expected = tape.gradient(full, decoder.trainable_variables)
    with tf.GradientTape() as tape:
        packed, accuracy, count = decoder.packed_loss(inputs, targets, training=False)
    got = tape.gradient(packed, decoder.trainable_variables)
    assert int(count) == int(np.count_nonzero(targets))
    assert float(packed) == pytest.approx(float(full), rel=1e-5)
    assert float(accuracy) == pytest.approx(float(masked_accuracy(targets, decoder(inputs))), abs=1e-6)
    for a, b in zip(expected, got):
        np.testing.assert_allclose(np.asarray(tf.convert_to_tensor(a)), np.asarray(tf.convert_to_tensor(b)), atol=1e-6)


def test_label_smoothing_changes_only_the_training_loss(batch):
    features, tokens = batch
    inputs, targets = (features, tokens[:, :, :-1]), tokens[:, :, 1:]
    decoder = make("transformer")
    plain, _, _ = decoder.packed_loss(inputs, targets, training=True)
    decoder.label_smoothing = 0.2
    smoothed, _, _ = decoder.packed_loss(inputs, targets, training=True)
    validation, _, _ = decoder.packed_loss(inputs, targets, training=False)
    logits = np.asarray(decoder(inputs)).reshape(-1, VOCAB)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    flat = targets.reshape(-1)
    ce = -np.mean(logp[np.arange(len(flat)), flat])
    # cross-entropy against 0.8 * one-hot + 0.2 / VOCAB, computed by hand
    expected = np.mean(-(0.8 * logp[np.arange(len(flat)), flat] + 0.2 * logp.mean(axis=1)))
    assert float(plain) == pytest.approx(ce, rel=1e-5)
    assert float(validation) == pytest.approx(ce, rel=1e-5)
    assert float(smoothed) == pytest.approx(expected, rel=1e-5)


def test_weight_decay_uses_adamw_and_leaves_biases_norms_and_embeddings_alone(batch):
    import keras

    from gemcaption.captioning.training import build_optimizer

    assert type(build_optimizer(1e-3)) is keras.optimizers.Adam
    decoder = make("attention_lstm")
    decoder(batch)
    optimizer = build_optimizer(0.1, weight_decay=0.5)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    before = {v.path: np.asarray(v).copy() for v in decoder.trainable_variables}
    # zero gradients: Adam moves nothing, so every change is the decoupled weight decay
    optimizer.apply([ops.zeros_like(v) for v in decoder.trainable_variables], decoder.trainable_variables)
    for v in decoder.trainable_variables:
        moved = not np.allclose(np.asarray(v), before[v.path])
        exempt = any(word in v.name for word in ("bias", "gamma", "beta", "embeddings"))
        assert moved != exempt, v.path


def test_attention_lstm_keras_save_load_round_trip(batch, tmp_path):
    import keras

    features, tokens = batch
    decoder = make("attention_lstm")
    expected = np.asarray(decoder((features, tokens)))
    path = tmp_path / "decoder.keras"
    decoder.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert type(loaded).__name__ == "AttentionLSTMDecoder"
    assert loaded.get_config() == decoder.get_config()
    np.testing.assert_allclose(np.asarray(loaded((features, tokens))), expected, atol=1e-6)


def test_attention_lstm_attends_over_the_set_of_grid_cells(batch):
    features, tokens = batch
    decoder = make("attention_lstm")
    a = np.asarray(decoder((features, tokens)))
    # soft attention and the mean are order-free: reordering the cells changes nothing...
    np.testing.assert_allclose(np.asarray(decoder((features[:, ::-1].copy(), tokens))), a, atol=1e-5)
    # ...while the content of a single cell does change the logits
    changed = features.copy()
    changed[:, 0] = np.random.default_rng(5).normal(size=changed[:, 0].shape)
    assert not np.allclose(np.asarray(decoder((changed, tokens))), a, atol=1e-4)


@pytest.mark.slow  # ~40 s idle, minutes on a loaded machine: two compiled searches and a fit
def test_captioner_with_attention_lstm_trains_with_regularisation_and_round_trips(tmp_path):
    from fakes import write_shapes

    from gemcaption.captioning.captioner import Captioner
    from gemcaption.captioning.config import TrainingConfig
    from gemcaption.data.loaders import Sample

    rows = write_shapes(tmp_path / "shapes", per_kind=2)
    samples = [Sample(image=p, captions=tuple(c), label=label, split="train") for p, c, label in rows]
    captioner = Captioner(
        "attention_lstm",
        encoder="efficientnet_lite0",
        image_size=32,
        weights=None,
        embed_dim=16,
        ff_dim=16,
        seq_len=8,
        dropout=0.0,
        seed=3,
        feature_cache=False,
    )
    settings = TrainingConfig(epochs=2, batch_size=4, learning_rate=1e-2, label_smoothing=0.1, weight_decay=0.01)
    history = captioner.fit(samples, samples[::3], config=settings, verbose=0)
    assert captioner.training_config == settings and len(history["loss"]) == 2
    paths = [s.image for s in samples]
    loaded = Captioner.load(captioner.save(tmp_path / "model"), feature_cache=False)
    assert loaded.decoder_name == "attention_lstm"
    assert loaded.caption(paths) == captioner.caption(paths)
    assert loaded.caption(paths, beam_width=2) == captioner.caption(paths, beam_width=2)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("gradients_now", [True, False])
def test_chunked_output_loss_equals_the_dense_layer_loss_and_gradients(smoothing, gradients_now):
    import tensorflow as tf

    from gemcaption.captioning.decoders.output_loss import output_cross_entropy

    rng = np.random.default_rng(3)
    hidden = tf.constant(rng.normal(size=(11, 6)).astype("float32"))  # 11 tokens: chunks of 4, 4 and 3
    kernel = tf.Variable(rng.normal(size=(6, 9)).astype("float32"))
    bias = tf.Variable(rng.normal(size=(9,)).astype("float32"))
    targets = tf.constant(rng.integers(0, 9, size=11).astype("int32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(hidden)
        logp = tf.nn.log_softmax(hidden @ kernel + bias)
        dense = -tf.reduce_sum(
            (1 - smoothing) * tf.gather(logp, targets, batch_dims=1) + smoothing * tf.reduce_mean(logp, -1)
        )
        chunked, hits = output_cross_entropy(
            hidden, kernel, bias, targets, smoothing=smoothing, gradients_now=gradients_now, chunk=4
        )
    assert float(chunked) == pytest.approx(float(dense), rel=1e-5)
    assert float(hits) == float(np.sum(np.argmax(logp, -1) == targets.numpy()))
    variables = [hidden, kernel, bias]
    for expected, got in zip(tape.gradient(dense, variables), tape.gradient(chunked, variables)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


def test_chunked_output_loss_of_no_tokens_is_zero_with_zero_gradients():
    import tensorflow as tf

    from gemcaption.captioning.decoders.output_loss import output_cross_entropy

    hidden = tf.zeros((0, 6))
    kernel = tf.Variable(tf.ones((6, 9)))
    bias = tf.Variable(tf.ones((9,)))
    with tf.GradientTape() as tape:
        tape.watch(hidden)
        loss, hits = output_cross_entropy(hidden, kernel, bias, tf.zeros((0,), tf.int32), gradients_now=True)
    d_hidden, d_kernel, d_bias = tape.gradient(loss, [hidden, kernel, bias])
    assert float(loss) == 0.0 and float(hits) == 0.0
    assert d_hidden.shape == (0, 6) and not np.any(d_kernel.numpy()) and not np.any(d_bias.numpy())
