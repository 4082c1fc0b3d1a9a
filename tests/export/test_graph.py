"""The exported graph's pieces without writing a SavedModel: greedy decoding in a tf.while_loop
equals GreedySampler on real tiny decoders (min/max length included), captions are written as
Vocabulary.decode writes them, and texts are split into words as gemcaption.text.tokenize does."""

from types import SimpleNamespace

import numpy as np
import pytest

import gemcaption  # noqa: F401  (sets the Keras backend)
from gemcaption.captioning.samplers import GreedySampler
from gemcaption.captioning.vocabulary import Vocabulary
from gemcaption.text import tokenize

tf = pytest.importorskip("tensorflow")
from gemcaption.export.graph import ServingGraph, words_in_graph  # noqa: E402

VOCAB, SEQ = 20, 8
WORDS = [f"w{i}" for i in range(VOCAB - 4)]


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def decoder(request):
    import keras

    from gemcaption.captioning.decoders import build_decoder

    keras.utils.set_random_seed(11)
    decoder = build_decoder(
        request.param, vocab_size=VOCAB, seq_len=SEQ, embed_dim=16, ff_dim=16, num_heads=2, dropout=0.0
    )
    features = np.random.default_rng(5).normal(size=(7, 4, 12)).astype("float32")
    decoder((features, np.zeros((7, 1, SEQ), "int32")))
    return decoder, features


def serving_graph(decoder, **lengths):
    captioner = SimpleNamespace(
        vocabulary=Vocabulary(WORDS), decoder=decoder, encoder=SimpleNamespace(model=None, image_size=32)
    )
    return ServingGraph(captioner, None, **lengths)


@pytest.mark.parametrize("lengths", [{}, {"min_length": 3}, {"max_length": 2}, {"min_length": 2, "max_length": 4}])
def test_greedy_decoding_in_the_graph_equals_the_greedy_sampler(decoder, lengths):
    decoder, features = decoder
    vocabulary = Vocabulary(WORDS)
    graph = serving_graph(decoder, min_length=lengths.get("min_length", 1), max_length=lengths.get("max_length"))
    ids = tf.function(graph.greedy_ids, autograph=False)(tf.constant(features)).numpy()
    expected = GreedySampler(**lengths)(
        decoder, features, start_id=vocabulary.start_id, end_id=vocabulary.end_id, pad_id=vocabulary.pad_id
    )
    np.testing.assert_array_equal(ids, expected)
    texts = [t.decode() for t in graph.words_of(tf.constant(ids)).numpy()]
    assert texts == [vocabulary.decode(row) for row in expected]
    assert all(len(t.split()) >= lengths.get("min_length", 1) for t in texts)
    assert all(len(t.split()) <= lengths.get("max_length", SEQ - 1) for t in texts)


def test_captions_are_written_as_the_vocabulary_decodes_them():
    vocabulary = Vocabulary(WORDS)
    graph = serving_graph(SimpleNamespace(seq_len=SEQ, vocab_size=VOCAB))
    rows = [[4, 5, 3, 6, 0], [1, 7, 8, 9, 10], [3, 4, 4, 0, 0], [2, 0, 11, 3, 12]]
    texts = [t.decode() for t in graph.words_of(tf.constant(rows, tf.int32)).numpy()]
    assert texts == [vocabulary.decode(row) for row in rows] == ["w0 w1", "<unk> w3 w4 w5 w6", "", "w7"]


@pytest.mark.parametrize(
    "text",
    [
        "A Red oval RUBY, set in gold!",
        "Pendientes de plata con circonitas: ¡año 2024!",
        "rock'n'roll isn't 'quoted' dogs' ''twice'' a’b",
        "snake_case and 3.5 carats -- tabs\tand\nlines",
        "",
        "   ",
        "Ωμέγα ДИАМАНТ 钻石",
    ],
)
def test_texts_are_split_into_words_like_tokenize(text):
    words = words_in_graph(tf.constant([text])).to_list()[0]
    assert [w.decode() for w in words] == tokenize(text)


class CountingDecoder:
    """Every caption is "w0 w0 ..." and would end after its first word; counts the steps run."""

    seq_len, vocab_size = 10, VOCAB

    def __init__(self):
        self.calls = tf.Variable(0)

    def start(self, grid):
        return {"h": tf.zeros([tf.shape(grid)[0], 1])}

    def step(self, token, state, position):
        self.calls.assign_add(1)
        best = tf.where(position == 0, 4, 3)  # w0 first, then the end token
        logits = tf.one_hot(tf.fill([tf.shape(token)[0]], best), VOCAB) * 5.0
        return logits + tf.one_hot(tf.fill([tf.shape(token)[0]], 4), VOCAB), state


@pytest.mark.parametrize("min_length, steps, caption", [(1, 2, "w0"), (3, 4, "w0 w0 w0")])
def test_the_loop_stops_once_every_caption_has_ended(min_length, steps, caption):
    decoder = CountingDecoder()
    graph = serving_graph(decoder, min_length=min_length)
    ids = tf.function(graph.greedy_ids, autograph=False)(tf.zeros([3, 2, 5]))
    assert int(decoder.calls.numpy()) == steps  # not the 9 the length limit allows
    assert [t.decode() for t in graph.words_of(ids).numpy()] == [caption] * 3
