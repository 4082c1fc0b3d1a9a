"""The decoding loop every sampler shares, and the compiled decoder steps it drives.

A decoder offers ``start(features) -> state`` (a dict of arrays with the batch on axis 0),
``step(token, state, position) -> (logits, state)``, ``seq_len`` and ``vocab_size``.
:class:`Sampler` owns the loop: it starts the state from the feature grids, feeds the chosen
tokens back one position at a time and stops when every sequence has ended or the length limit
is reached. A subclass only says how next tokens are chosen, through the :class:`Search` it
returns from :meth:`Sampler.begin` (greedy: the best token of each row; beam: the best
continuations of each image's beams, which also reorders the decoder state).

Two choices are never open: the padding and start tokens (no training target is either, so
they are not words), and the end token before ``min_length`` words have been chosen, so a
caption is never empty. Both are removed from the scores the search ranks (not renormalised).

A Keras decoder's ``start`` and ``step`` are compiled once with ``tf.function`` and kept for as
long as the decoder lives (:func:`decoding_steps`), so repeated captioning calls stay fast; any
other object (a toy decoder in a test) is called as it is, with numpy arrays.
"""

from __future__ import annotations

import math
import operator
import sys
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...errors import ConfigError


@dataclass(frozen=True)
class SpecialIds:
    """The vocabulary's start, end and padding token ids."""

    start: int
    end: int
    pad: int = 0


class DecodingSteps:
    """``start`` and ``step`` of one decoder, compiled when it is a Keras model."""

    def __init__(self, decoder):
        self.seq_len, self.vocab_size = int(decoder.seq_len), int(decoder.vocab_size)
        keras = sys.modules.get("keras")
        self.compiled = keras is not None and isinstance(decoder, keras.layers.Layer)
        if self.compiled:
            import tensorflow as tf

            owner = weakref.ref(decoder)  # the cache must not keep the decoder alive
            self._start = tf.function(lambda features: owner().start(features), reduce_retracing=True)
            self._step = tf.function(
                lambda token, state, position: owner().step(token, state, position), reduce_retracing=True
            )
        else:
            self._start, self._step = decoder.start, decoder.step

    def start(self, features: np.ndarray) -> dict:
        if self.compiled:
            import tensorflow as tf

            return self._start(tf.convert_to_tensor(features, tf.float32))
        return self._start(features)

    def step(self, token: np.ndarray, state: dict, position: int) -> tuple[np.ndarray, dict]:
        if self.compiled:
            import tensorflow as tf

            logits, state = self._step(tf.constant(token), state, tf.constant(position, tf.int32))
            return logits.numpy(), state
        logits, state = self._step(token, state, position)
        return np.asarray(logits), state


_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoding_steps(decoder) -> DecodingSteps:
    """The (cached) compiled steps of ``decoder``."""
    try:
        steps = _STEPS.get(decoder)
        if steps is None:
            steps = _STEPS[decoder] = DecodingSteps(decoder)
        return steps
    except TypeError:  # not weak-referenceable or not hashable: compile for this call only
        return DecodingSteps(decoder)


def reorder_state(state: dict, rows: np.ndarray) -> dict:
    """The decoder state with its batch rows taken in the order ``rows``."""
    out = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            out[key] = value[rows]
        else:
            from keras import ops

            out[key] = ops.take(value, rows, axis=0)
    return out


class Search:
    """The bookkeeping of one decoding call. ``rows_per_input`` decoder rows decode each input."""

    rows_per_input: int = 1
    done: bool = False

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """What the search ranks, from the step's logits (rows, vocab); a copy it may change."""
        return np.array(logits)

    def advance(self, scores: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Choose the tokens at ``position``: the next input tokens (rows,) and the state rows to
        keep (``None`` when every row keeps its own)."""
        raise NotImplementedError

    def result(self) -> np.ndarray:
        """Token ids (inputs, steps), padded after each sequence's end token."""
        raise NotImplementedError


class Sampler:
    """Base of every decoding strategy: the loop, ``min_length``/``max_length`` and config.

    ``max_length`` caps the words of a caption (default: as many as the decoder was trained
    for, ``seq_len - 1`` tokens including the end token; larger values are capped to that);
    ``min_length`` (at least 1) words come before the end token may be chosen.
    Calling a sampler returns token ids (N, steps) for feature grids (N, G, C).
    """

    name: ClassVar[str] = ""

    def __init__(self, max_length: int | None = None, min_length: int = 1):
        self.max_length = None if max_length is None else whole_number("max_length", max_length, minimum=1)
        self.min_length = whole_number("min_length", min_length, minimum=1)
        if self.max_length is not None and self.min_length > self.max_length:
            raise ConfigError(f"min_length ({self.min_length}) must not exceed max_length ({self.max_length})")

    # -- what a subclass provides ---------------------------------------------------------------
    def begin(self, inputs: int, steps: int, ids: SpecialIds, vocab_size: int) -> Search:
        """A fresh :class:`Search` for ``inputs`` sequences of at most ``steps`` tokens."""
        raise NotImplementedError

    # -- the loop ------------------------------------------------------------------------------
    def steps_for(self, decoder) -> int:
        """How many tokens (including the end token) are generated at most for ``decoder``."""
        limit = int(decoder.seq_len) - 1
        return limit if self.max_length is None else min(limit, self.max_length)

    def __call__(self, decoder, features, *, start_id: int, end_id: int, pad_id: int = 0) -> np.ndarray:
        steps = decoding_steps(decoder)
        features = np.asarray(features, np.float32)
        ids = SpecialIds(int(start_id), int(end_id), int(pad_id))
        limit = self.steps_for(decoder)
        search = self.begin(features.shape[0], limit, ids, steps.vocab_size)
        if search.rows_per_input > 1:
            features = np.repeat(features, search.rows_per_input, axis=0)
        state = steps.start(features)
        token = np.full(features.shape[0], ids.start, np.int32)
        for position in range(limit):
            logits, state = steps.step(token, state, position)
            scores = search.scores(logits)
            scores[:, [ids.pad, ids.start]] = -np.inf
            if position < self.min_length:
                scores[:, ids.end] = -np.inf
            token, rows = search.advance(scores, position)
            if rows is not None:
                state = reorder_state(state, rows)
            if search.done:
                break
        return search.result()

    # -- configuration -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Every constructor argument, JSON-able: ``type(self).from_config(config)`` rebuilds it."""
        return {"max_length": self.max_length, "min_length": self.min_length}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sampler:
        """The sampler ``get_config`` described; an unknown key is a :class:`ConfigError`."""
        if not isinstance(config, dict):
            raise ConfigError(f"a {cls.name} sampler config must be a dict, not {type(config).__name__}")
        known = set(cls().get_config())
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"{cls.name} sampler has no option {unknown[0]!r}; options: {', '.join(sorted(known))}")
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def whole_number(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, not {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def real_number(name: str, value: Any, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < minimum:
        raise ConfigError(f"{name} must be a finite number of at least {minimum}, not {value!r}")
    return number
