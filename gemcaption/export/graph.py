"""The TensorFlow functions a SavedModel export serves, built from a trained captioner.

:class:`ServingGraph` holds the captioner's Keras encoder and decoder (and, when there is one, the
learned caption space) and offers the two serving functions:

* :meth:`ServingGraph.caption_images`: a batch of encoded images (tf.string) -> ``captions``
  (tf.string) and, with a space, ``image_embeddings`` (float32, unit length). Every step runs in
  the graph: decoding and resizing (:mod:`.pixels`), the encoder, the float16 rounding the feature
  cache applies (so the features are the ones :meth:`Captioner.caption` decodes from), and greedy
  decoding in a ``tf.while_loop`` that stops once every caption has ended, with the same rules as
  :class:`~gemcaption.captioning.samplers.GreedySampler` (padding and start tokens never chosen, the
  end token not before ``min_length`` words, at most ``max_length`` words).
* :meth:`ServingGraph.embed_texts` (with a space): strings -> ``text_embeddings``, tokenised in the
  graph like :func:`gemcaption.text.tokenize` (lower case, letters and digits, inner apostrophes;
  no NFC normalisation: send composed accents) and looked up in the space's vocabulary.
"""

from __future__ import annotations

import tensorflow as tf

from ..captioning.vocabulary import SPECIAL_TOKENS
from .pixels import encoder_pixels

WORD = r"\pL\pN"  # what Python's [^\W_] matches: letters and digits of any script
APOSTROPHES = "'’"


class ServingGraph:
    """The serving functions of one captioner (see the module doc)."""

    def __init__(self, captioner, space=None, min_length: int = 1, max_length: int | None = None):
        vocabulary, decoder = captioner.vocabulary, captioner.decoder
        self.encoder = captioner.encoder.model
        self.image_size = int(captioner.encoder.image_size)
        self.decoder = decoder
        self.space = space
        self.ids = (vocabulary.pad_id, vocabulary.start_id, vocabulary.end_id, vocabulary.unk_id)
        self.vocab_size = len(vocabulary)
        self.steps = int(decoder.seq_len) - 1 if max_length is None else min(int(decoder.seq_len) - 1, max_length)
        self.min_length = int(min_length)
        self.words = tf.constant(vocabulary.words)
        if space is not None:
            words = space.vocabulary.words[len(SPECIAL_TOKENS) :]
            self.space_words = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(words, tf.string), tf.range(len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + len(words))
                ),
                default_value=-1,
            )

    # -- images ------------------------------------------------------------------------------------
    def features(self, images):
        """Encoded images (N,) -> feature grids (N, cells, channels), float16-rounded as cached."""
        size = self.image_size
        pixels = tf.map_fn(
            lambda data: encoder_pixels(data, size),
            images,
            fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8),
        )
        # the encoder's graph fails on an empty batch (TensorFlow 2.21: a batch-norm shape error), so a
        # black image stands in for none and its grid is dropped
        count = tf.shape(pixels)[0]
        pixels = tf.concat([pixels, tf.zeros([1, size, size, 3], pixels.dtype)], axis=0)[: tf.maximum(count, 1)]
        grid = self.encoder(tf.cast(pixels, tf.float32), training=False)[:count]
        grid = tf.reshape(grid, (count, -1, grid.shape[-1]))
        return tf.cast(tf.cast(grid, tf.float16), tf.float32)

    def greedy_ids(self, grid):
        """Token ids (N, steps) of greedy decoding, padded after each end token."""
        pad, start, end, _ = self.ids
        batch = tf.shape(grid)[0]
        banned = tf.scatter_nd([[pad], [start]], [True, True], [self.vocab_size])
        is_end = tf.one_hot(end, self.vocab_size, on_value=True, off_value=False)
        columns = tf.range(self.steps)[None, :]

        def keep_going(position, token, state, finished, ids):
            return tf.logical_and(position < self.steps, tf.logical_not(tf.reduce_all(finished)))

        def step(position, token, state, finished, ids):
            logits, state = self.decoder.step(token, state, position)
            forbidden = tf.logical_or(banned, tf.logical_and(is_end, position < self.min_length))
            logits = tf.where(forbidden[None, :], tf.constant(-float("inf"), logits.dtype), logits)
            token = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
            token = tf.where(finished, pad, token)
            ids = tf.where(columns == position, token[:, None], ids)
            return position + 1, token, state, tf.logical_or(finished, token == end), ids

        loop = (
            tf.constant(0),
            tf.fill([batch], tf.constant(start, tf.int32)),
            self.decoder.start(grid),
            tf.zeros([batch], tf.bool),
            tf.fill([batch, self.steps], tf.constant(pad, tf.int32)),
        )
        return tf.while_loop(keep_going, step, loop, maximum_iterations=self.steps)[-1]

    def words_of(self, ids):
        """Captions from token ids, as :meth:`Vocabulary.decode` writes them."""
        pad, start, end, unk = self.ids
        ended = tf.cumsum(tf.cast(ids == end, tf.int32), axis=1) > 0
        keep = tf.logical_and(tf.logical_not(ended), tf.logical_or(ids >= len(SPECIAL_TOKENS), ids == unk))
        words = tf.ragged.boolean_mask(tf.gather(self.words, ids), keep)
        return tf.strings.reduce_join(words, axis=1, separator=" ")

    def caption_images(self, images):
        """The ``serving_default`` function: captions (and image embeddings) of encoded images."""
        grid = self.features(images)
        out = {"captions": self.words_of(self.greedy_ids(grid))}
        if self.space is not None:
            pooled = tf.reduce_mean(grid, axis=1, keepdims=True) if self.space.config.image_pooling == "mean" else grid
            out["image_embeddings"] = self.space.model.image(pooled, training=False)
        return out

    # -- texts ---------------------------------------------------------------------------------------
    def token_ids(self, texts):
        """(N, seq_len) int32 ids of the known words of ``texts``, as :meth:`CaptionSpace.token_ids`."""
        ids = self.space_words.lookup(words_in_graph(texts))
        known = tf.ragged.boolean_mask(ids, ids >= 0)
        seq_len = self.space.config.seq_len
        return tf.cast(known[:, :seq_len].to_tensor(default_value=0, shape=[None, seq_len]), tf.int32)

    def embed_texts(self, texts):
        """The ``embed_text`` function: unit vectors of texts; zeros for a text with no known word."""
        tokens = self.token_ids(texts)
        vectors = self.space.model.text(tokens, training=False)
        known = tf.reduce_any(tokens != 0, axis=1, keepdims=True)
        return {"text_embeddings": tf.where(known, vectors, tf.zeros_like(vectors))}


def words_in_graph(texts):
    """The words of each of ``texts`` (N,) as a ragged (N, None) tf.string, as
    :func:`gemcaption.text.tokenize` splits them (without its NFC normalisation)."""
    text = tf.strings.lower(texts, encoding="utf-8")
    text = tf.strings.regex_replace(text, f"[^{WORD}{APOSTROPHES}]+", " ")
    text = tf.strings.regex_replace(text, f"[{APOSTROPHES}]{{2,}}", " ")  # only single inner apostrophes join
    text = tf.strings.regex_replace(text, f"(^|[^{WORD}])[{APOSTROPHES}]", r"\1 ")
    text = tf.strings.regex_replace(text, f"[{APOSTROPHES}]([^{WORD}]|$)", r" \1")
    return tf.strings.split(text)
