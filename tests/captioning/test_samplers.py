"""Samplers on a toy decoder with hand-made next-token probabilities, then on the real decoders."""

import gc
import json
import math
import weakref

import numpy as np
import pytest

import gemcaption  # noqa: F401
from gemcaption.captioning.samplers import (
    SAMPLERS,
    BeamSampler,
    GreedySampler,
    get_sampler,
    resolve_sampler,
    serialize_sampler,
)
from gemcaption.captioning.samplers.base import decoding_steps
from gemcaption.errors import ConfigError, UnknownNameError

PAD, UNK, START, END, A, B, C = range(7)
IDS = dict(start_id=START, end_id=END, pad_id=PAD)
OTHER = -60.0  # the log-probability of every token a toy table does not list


class ToyDecoder:
    """Next-token log-probabilities read from ``tables[image][prefix]``, where ``image`` is
    ``features[i, 0, 0]`` and ``prefix`` the tokens after the start token. The state carries the
    prefix, so a beam that keeps the wrong state rows reads the wrong table entry."""

    def __init__(self, tables, seq_len=6, vocab_size=7, fallback=None):
        self.tables, self.seq_len, self.vocab_size = tables, seq_len, vocab_size
        self.fallback = fallback or {END: 0.0}
        self.steps = 0

    def start(self, features):
        images = np.asarray(features)[:, 0, 0].astype(int)
        return {"image": images, "prefix": np.zeros((len(images), 0), np.int32)}

    def step(self, token, state, position):
        self.steps += 1
        assert state["prefix"].shape[1] == position
        prefix = np.concatenate([state["prefix"], np.asarray(token, np.int32)[:, None]], axis=1)
        logits = np.full((len(prefix), self.vocab_size), OTHER, np.float32)
        for row, (image, tokens) in enumerate(zip(state["image"], prefix)):
            words = tuple(int(t) for t in tokens[1:])
            for tok, logp in self.tables.get(int(image), {}).get(words, self.fallback).items():
                logits[row, tok] = logp
        return logits, {"image": state["image"], "prefix": prefix}


def images(*ids):
    return np.asarray(ids, np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)


def words(row):
    """Token ids up to and including the first end token."""
    row = list(row)
    return row[: row.index(END) + 1] if END in row else row


log = math.log


# -- greedy ---------------------------------------------------------------------------------------
def test_greedy_picks_the_argmax_stops_at_end_and_pads_after_it():
    tables = {
        0: {(): {A: log(0.6), B: log(0.4)}, (A,): {B: log(0.7), C: log(0.3)}, (A, B): {END: log(0.9), C: log(0.1)}},
        1: {(): {C: 0.0}, (C,): {C: 0.0}, (C, C): {C: 0.0}, (C, C, C): {C: 0.0}, (C, C, C, C): {C: 0.0}},
    }
    decoder = ToyDecoder(tables)
    ids = GreedySampler()(decoder, images(0, 1), **IDS)
    assert ids.shape == (2, decoder.seq_len - 1)
    assert ids[0].tolist() == [A, B, END, PAD, PAD]
    assert ids[1].tolist() == [C, C, C, C, C]  # never ends: stops at the length limit


def test_the_loop_stops_once_every_sequence_has_ended():
    decoder = ToyDecoder({0: {(): {A: 0.0}}, 1: {(): {B: 0.0}, (B,): {C: 0.0}}}, seq_len=20)
    ids = GreedySampler()(decoder, images(0, 1), **IDS)
    assert [words(r) for r in ids] == [[A, END], [B, C, END]]
    assert decoder.steps == 3


def test_padding_and_start_tokens_are_never_chosen():
    decoder = ToyDecoder({0: {(): {PAD: 5.0, START: 4.0, A: 0.0}, (A,): {START: 9.0, END: 1.0}}})
    for sampler in (GreedySampler(), BeamSampler()):
        assert words(sampler(decoder, images(0), **IDS)[0]) == [A, END]


def test_max_length_caps_the_words():
    decoder = ToyDecoder({}, seq_len=10, fallback={C: 0.0})
    assert GreedySampler(max_length=3)(decoder, images(0), **IDS).tolist() == [[C, C, C]]
    assert BeamSampler(max_length=4)(decoder, images(0), **IDS).tolist() == [[C, C, C, C]]
    assert GreedySampler(max_length=50)(decoder, images(0), **IDS).shape == (1, 9)  # capped to the decoder's


# -- beam ---------------------------------------------------------------------------------------------
# greedy takes A (0.55), then C (0.6), then END (0.9): 0.297; B (0.45) then END (0.99) is 0.4455
LIKELY_SECOND = {
    (): {A: log(0.55), B: log(0.45)},
    (A,): {C: log(0.6), B: log(0.4)},
    (A, C): {END: log(0.9), B: log(0.1)},
    (B,): {END: log(0.99), C: log(0.01)},
}


def with_rest_on_unk(**logps):
    """A next-token distribution with these log-probabilities and the rest of the mass on UNK."""
    table = {globals()[name]: value for name, value in logps.items()}
    table[UNK] = log(1.0 - sum(math.exp(v) for v in table.values()))
    return table


def test_beam_finds_a_likelier_caption_than_greedy():
    decoder = ToyDecoder({0: LIKELY_SECOND})
    assert words(GreedySampler()(decoder, images(0), **IDS)[0]) == [A, C, END]
    for penalty in (0.0, 0.7):
        assert words(BeamSampler(width=2, length_penalty=penalty)(decoder, images(0), **IDS)[0]) == [B, END]


def test_length_penalty_decides_between_a_short_and_a_long_caption():
    # B END: log-prob -1.0 over 2 tokens; A A A END: -1.2 over 4 tokens
    table = {
        (): {A: log(0.5), B: log(0.5)},
        (B,): with_rest_on_unk(END=log(2) - 1.0),
        (A,): {A: 0.0},
        (A, A): {A: 0.0},
        (A, A, A): with_rest_on_unk(END=log(2) - 1.2),
    }
    decoder = ToyDecoder({0: table})

    def best(penalty):
        return words(BeamSampler(width=2, length_penalty=penalty)(decoder, images(0), **IDS)[0])

    assert best(0.0) == [B, END]  # raw log-probability: the short one
    assert best(3.0) == [A, A, A, END]  # -1.2 / 1.5**3 > -1.0 / (7/6)**3


def test_beams_that_survive_carry_their_own_decoder_state():
    # after the first step both survivors extend beam B, so beam A's state row must be replaced by B's
    table = {
        (): {A: log(0.5), B: log(0.4), C: log(0.1)},
        (A,): {**{t: log(0.1) for t in range(4, 12)}, UNK: log(0.2)},
        (B,): {C: log(0.5), B: log(0.5)},
        (B, C): {END: 0.0},
        (B, B): {A: log(0.9), END: log(0.1)},
    }
    decoder = ToyDecoder({0: table}, seq_len=8, vocab_size=12)
    assert words(BeamSampler(width=2, length_penalty=0.0)(decoder, images(0), **IDS)[0]) == [B, C, END]
    # log(0.18) / 1.5 ** 0.7 > log(0.2) / (8 / 6) ** 0.7: the longer one wins with the default penalty
    assert words(BeamSampler(width=2)(decoder, images(0), **IDS)[0]) == [B, B, A, END]


def test_beam_decodes_each_image_of_a_batch_on_its_own():
    short = {(): {A: 0.0}}
    decoder = ToyDecoder({0: short, 1: LIKELY_SECOND, 2: {(): {C: 0.0}, (C,): {B: 0.0}}})
    ids = BeamSampler(width=3)(decoder, images(0, 1, 2), **IDS)
    assert [words(r) for r in ids] == [[A, END], [B, END], [C, B, END]]


# -- min_length: never an empty caption -----------------------------------------------------------
def test_min_length_forbids_an_early_end():
    table = {(): {END: log(0.9), A: log(0.1)}, (A,): {END: log(0.8), B: log(0.2)}, (A, B): {END: 0.0}}
    decoder = ToyDecoder({0: table})
    for make in (GreedySampler, BeamSampler):
        assert words(make()(decoder, images(0), **IDS)[0]) == [A, END]
        assert words(make(min_length=2)(decoder, images(0), **IDS)[0]) == [A, B, END]


@pytest.mark.parametrize("min_length", [1, 3])
@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_no_caption_is_shorter_than_min_length_even_when_the_model_wants_to_stop(sampler, min_length):
    rng = np.random.default_rng(0)

    class EagerToEnd(ToyDecoder):
        def step(self, token, state, position):
            logits, state = super().step(token, state, position)
            logits = rng.normal(size=logits.shape).astype(np.float32)
            logits[:, END] += 6.0  # the end token is by far the likeliest everywhere
            return logits, state

    ids = get_sampler(sampler, min_length=min_length)(EagerToEnd({}, seq_len=8), images(*range(20)), **IDS)
    for row in ids:
        caption = words(row)
        assert caption[-1] == END and len(caption) - 1 == min_length, caption  # it ends as soon as allowed
        assert not {PAD, START, END} & set(caption[:-1])


# -- configuration and the registry -----------------------------------------------------------------
@pytest.mark.parametrize(
    "sampler",
    [
        GreedySampler(),
        GreedySampler(max_length=7, min_length=2),
        BeamSampler(),
        BeamSampler(width=5, length_penalty=1.2, min_length=2, max_length=10),
    ],
)
def test_config_round_trips_through_json(sampler):
    config = sampler.get_config()
    assert type(sampler).from_config(json.loads(json.dumps(config))) == sampler
    rebuilt = get_sampler(json.loads(json.dumps(serialize_sampler(sampler))))
    assert rebuilt == sampler and type(rebuilt) is type(sampler) and rebuilt.get_config() == config
    decoder = ToyDecoder({0: LIKELY_SECOND})
    np.testing.assert_array_equal(rebuilt(decoder, images(0), **IDS), sampler(decoder, images(0), **IDS))


def test_defaults_are_the_documented_ones():
    assert BeamSampler().get_config() == {"width": 3, "length_penalty": 0.7, "min_length": 1, "max_length": None}
    assert GreedySampler().get_config() == {"max_length": None, "min_length": 1}


def test_registry_names_aliases_and_unknown_names():
    assert SAMPLERS.names() == ["greedy", "beam"]
    assert isinstance(get_sampler("Beam-Search"), BeamSampler)
    assert isinstance(get_sampler("greedy"), GreedySampler) and isinstance(get_sampler(None), GreedySampler)
    assert get_sampler("beam", width=4).width == 4
    with pytest.raises(UnknownNameError, match="greedy, beam") as caught:
        get_sampler("nucleus")
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, ValueError)
    assert caught.value.choices == ["greedy", "beam"]


def test_options_override_an_instance_without_changing_it():
    original = BeamSampler(width=4)
    changed = get_sampler(original, length_penalty=0.0)
    assert (changed.width, changed.length_penalty, original.length_penalty) == (4, 0.0, 0.7)
    assert get_sampler(original) is original


@pytest.mark.parametrize(
    "make",
    [
        lambda: BeamSampler(width=0),
        lambda: BeamSampler(width=2.5),
        lambda: BeamSampler(width=True),
        lambda: BeamSampler(length_penalty=-0.1),
        lambda: BeamSampler(length_penalty=float("nan")),
        lambda: BeamSampler(length_penalty="long"),
        lambda: GreedySampler(min_length=0),
        lambda: GreedySampler(max_length=0),
        lambda: BeamSampler(min_length=3, max_length=2),
        lambda: GreedySampler.from_config({"width": 3}),
        lambda: get_sampler("greedy", length_penalty=1.0),
        lambda: get_sampler(2.5),
        lambda: get_sampler({"name": "beam", "config": {"width": 0}}),
        lambda: get_sampler({"kind": "beam"}),
        lambda: get_sampler({"name": "beam", "config": [3]}),
    ],
)
def test_bad_values_are_config_errors(make):
    with pytest.raises(ConfigError):
        make()


def test_beam_width_keeps_its_old_meaning():
    assert resolve_sampler() == GreedySampler() == resolve_sampler(beam_width=1)
    assert resolve_sampler(beam_width=4) == BeamSampler(width=4)
    assert resolve_sampler("beam", beam_width=5) == BeamSampler(width=5)
    assert resolve_sampler(BeamSampler(length_penalty=1.0), beam_width=2) == BeamSampler(2, 1.0)
    assert resolve_sampler(3) == BeamSampler(width=3)  # the old positional beam width
    assert resolve_sampler("greedy", beam_width=1) == GreedySampler()
    assert resolve_sampler(beam_width=2, length_penalty=0.0, min_length=2) == BeamSampler(2, 0.0, min_length=2)
    for bad in (dict(sampler="greedy", beam_width=3), dict(beam_width=0), dict(beam_width="3")):
        with pytest.raises(ConfigError):
            resolve_sampler(**bad)


# -- the real decoders --------------------------------------------------------------------------------
VOCAB, SEQ = 24, 8


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def real_decoder(request):
    import keras

    from gemcaption.captioning.decoders import build_decoder

    keras.utils.set_random_seed(7)
    decoder = build_decoder(
        request.param, vocab_size=VOCAB, seq_len=SEQ, embed_dim=16, ff_dim=16, num_heads=2, dropout=0.0
    )
    features = np.random.default_rng(7).normal(size=(6, 4, 12)).astype("float32")
    decoder((features, np.zeros((6, 1, SEQ), "int32")))
    return decoder, features


def full_pass_greedy(decoder, features, min_length=1):
    """Greedy ids from full forward passes: at each position, re-read the whole prefix."""
    tokens = np.zeros((len(features), 1, SEQ), np.int32)
    tokens[:, 0, 0] = START
    out = np.full((len(features), SEQ - 1), PAD, np.int32)
    ended = np.zeros(len(features), bool)
    for position in range(SEQ - 1):
        logits = np.asarray(decoder((features, tokens)))[:, 0, position].copy()
        logits[:, [PAD, START]] = -np.inf
        if position < min_length:
            logits[:, END] = -np.inf
        choice = np.where(ended, PAD, logits.argmax(axis=-1))
        out[:, position] = choice
        ended |= choice == END
        if position + 1 < SEQ:
            tokens[:, 0, position + 1] = choice
    return out


@pytest.mark.parametrize("min_length", [1, 3])
def test_incremental_decoding_equals_the_full_forward_pass(real_decoder, min_length):
    decoder, features = real_decoder
    expected = full_pass_greedy(decoder, features, min_length)
    np.testing.assert_array_equal(GreedySampler(min_length=min_length)(decoder, features, **IDS), expected)
    # a beam of one keeps the single best continuation: the same as greedy
    np.testing.assert_array_equal(BeamSampler(width=1, min_length=min_length)(decoder, features, **IDS), expected)


def full_pass_beam(decoder, features, width, length_penalty):
    """Beam search over full forward passes, one image at a time, re-reading every prefix."""
    best = []
    for image in features:
        beams = [(0.0, [], False)]  # (log-prob, tokens, ended)
        for position in range(SEQ - 1):
            prefixes = np.array([[START] + tokens + [PAD] * (SEQ - 1 - len(tokens)) for _, tokens, _ in beams])
            logits = np.asarray(decoder((np.repeat(image[None], len(beams), 0), prefixes[:, None])), np.float64)
            logits = logits[:, 0, position]
            logp = logits - logits.max(-1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
            logp[:, [PAD, START]] = -np.inf
            if position < 1:
                logp[:, END] = -np.inf
            candidates = []
            for (score, tokens, ended), row in zip(beams, logp):
                if ended:
                    candidates.append((score, tokens, True))
                else:
                    candidates += [(score + row[t], tokens + [t], t == END) for t in range(VOCAB)]
            beams = sorted(candidates, key=lambda c: -c[0])[:width]
            if all(ended for _, _, ended in beams):
                break
        best.append(max(beams, key=lambda c: c[0] / ((5 + len(c[1])) / 6) ** length_penalty)[1])
    return best


@pytest.mark.parametrize("width, length_penalty", [(3, 0.7), (4, 0.0)])
def test_beam_search_with_cached_state_equals_beam_search_over_full_passes(real_decoder, width, length_penalty):
    decoder, features = real_decoder
    ids = BeamSampler(width=width, length_penalty=length_penalty)(decoder, features, **IDS)
    expected = full_pass_beam(decoder, features, width, length_penalty)
    assert [words(row) for row in ids] == [words(tokens) for tokens in expected]
    assert not (ids[:, 0] == END).any()


def test_compiled_steps_are_cached_per_decoder_and_released_with_it():
    import keras

    from gemcaption.captioning.decoders import build_decoder

    decoder = build_decoder("lstm", vocab_size=VOCAB, seq_len=SEQ, embed_dim=8, ff_dim=8, dropout=0.0)
    assert isinstance(decoder, keras.layers.Layer)
    features = np.zeros((2, 3, 5), np.float32)
    GreedySampler()(decoder, features, **IDS)
    steps = decoding_steps(decoder)
    assert steps.compiled and decoding_steps(decoder) is steps
    BeamSampler()(decoder, features, **IDS)
    assert decoding_steps(decoder) is steps
    alive = weakref.ref(decoder)
    del decoder, steps
    gc.collect()
    assert alive() is None  # the cache does not keep a decoder alive


def test_captioner_takes_a_sampler_by_name_object_or_beam_width(real_decoder):
    from gemcaption.captioning.captioner import Captioner
    from gemcaption.captioning.vocabulary import Vocabulary

    decoder, features = real_decoder
    captioner = Captioner("lstm")
    captioner.decoder = decoder
    captioner.vocabulary = Vocabulary([f"w{i}" for i in range(VOCAB - 4)])
    greedy = captioner.caption_features(features)
    assert all(greedy) and captioner.caption_features(features, beam_width=1) == greedy
    assert captioner.caption_features(features, sampler=GreedySampler()) == greedy
    assert captioner.caption_features(features, batch_size=2) == greedy
    beam = captioner.caption_features(features, "beam")
    assert all(beam)
    assert captioner.caption_features(features, beam_width=3) == beam
    assert captioner.caption_features(features, sampler=BeamSampler(3)) == beam
    assert captioner.caption_features(features, sampler={"name": "beam", "config": {}}) == beam
    long = captioner.caption_features(features, "beam", min_length=4)
    assert all(len(text.split()) >= 4 for text in long)
    assert all(len(t.split()) <= 2 for t in captioner.caption_features(features, "greedy", max_length=2))
    for bad in (
        dict(beam_width=0),
        dict(sampler="nucleus"),
        dict(sampler="beam", length_penalty=-1),
        dict(batch_size=0),
        dict(sampler="greedy", beam_width=2),
        dict(sampler="greedy", width=2),
    ):
        with pytest.raises(ConfigError):
            captioner.caption_features(features, **bad)
    with pytest.raises(ConfigError):  # before any image is read
        captioner.caption(["/nonexistent/ring.jpg"], sampler="beam", width=0)


# -- where samplers are used: the retriever ----------------------------------------------------------
class RecordingCaptioner:
    """Captions every image "a stone" and remembers the sampler it was asked for."""

    model_dir = None

    def __init__(self):
        self.samplers = []

    def caption(self, images, sampler=None, **kwargs):
        self.samplers.append(resolve_sampler(sampler, kwargs.get("beam_width")))
        return ["a red stone" if i % 2 else "a blue stone" for i, _ in enumerate(images)]


def test_retriever_captions_with_its_sampler_and_saves_it(tmp_path):
    from fakes import make_image

    from gemcaption.retrieval.retriever import Retriever

    images = [make_image(tmp_path / f"{i}.png", (200, 20 * i, 30), i) for i in range(4)]
    captioner = RecordingCaptioner()
    sampler = BeamSampler(width=4, length_penalty=1.5, min_length=2)
    retriever = Retriever(captioner, sampler=sampler, progress=False).build(images)
    assert captioner.samplers and set(captioner.samplers) == {sampler}
    assert retriever.beam_width == 4
    settings = retriever.settings()
    assert settings["sampler"] == serialize_sampler(sampler) and settings["beam_width"] == 4
    json.dumps(settings)
    retriever.save(tmp_path / "index")
    loaded = Retriever.load(tmp_path / "index", captioner)
    assert loaded.sampler == sampler
    loaded.search(images[0])
    assert captioner.samplers[-1] == sampler

    # an index whose settings only know beam_width (as before samplers) still loads
    manifest_path = tmp_path / "index" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["sampler"]
    manifest["config"]["beam_width"] = 3
    manifest_path.write_text(json.dumps(manifest))
    assert Retriever.load(tmp_path / "index", captioner).sampler == BeamSampler(width=3)


def test_retriever_reads_sampler_names_dicts_and_beam_widths():
    from gemcaption.retrieval.retriever import Retriever

    captioner = RecordingCaptioner()
    assert Retriever(captioner).sampler == GreedySampler()
    assert Retriever(captioner, beam_width=2).sampler == BeamSampler(width=2)
    assert Retriever(captioner, sampler="beam").sampler == BeamSampler()
    assert Retriever(captioner, sampler={"name": "greedy", "config": {"max_length": 5}}).sampler == GreedySampler(
        max_length=5
    )
    for bad in (dict(beam_width=0), dict(sampler="nucleus"), dict(sampler="greedy", beam_width=2)):
        with pytest.raises(ConfigError):
            Retriever(captioner, **bad)


@pytest.mark.parametrize("max_length", [1, 2])
@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_a_length_cap_never_gives_an_empty_caption(sampler, max_length):
    class EndAtOnce(ToyDecoder):
        def step(self, token, state, position):
            logits, state = super().step(token, state, position)
            logits[:, END] = 10.0  # the model would end every caption at once
            return logits, state

    ids = get_sampler(sampler, max_length=max_length)(EndAtOnce({}, seq_len=8), images(0, 1, 2), **IDS)
    assert ids.shape[1] <= max_length
    for row in ids:
        caption = [t for t in words(row) if t != END]
        assert 1 <= len(caption) <= max_length and not {PAD, START} & set(caption)


def test_min_length_beyond_the_decoders_limit_gives_the_longest_caption_it_can():
    decoder = ToyDecoder({}, seq_len=5, fallback={END: 0.0, A: -1.0})
    for sampler in (GreedySampler(min_length=10), BeamSampler(min_length=10)):
        assert sampler(decoder, images(0), **IDS).tolist() == [[A, A, A, A]]  # never allowed to end: 4 words
