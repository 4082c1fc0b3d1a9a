import json

import numpy as np
import pytest
from fakes import TINY_CAPTIONER as TINY
from fakes import write_shapes
from PIL import Image

import gemcaption  # noqa: F401
from gemcaption.captioning.captioner import Captioner
from gemcaption.data.loaders import Sample
from gemcaption.errors import ImageError, ModelError, UnknownNameError


def samples(rows, split):
    return [Sample(image=p, captions=tuple(c), label=label, split=split) for p, c, label in rows]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rows = write_shapes(tmp_path_factory.mktemp("shapes"), per_kind=3)
    return samples(rows, "train"), samples(rows[::3], "val")


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def trained(request, data):
    train, val = data
    captioner = Captioner(request.param, **TINY)
    captioner.fit(train, val, epochs=60, batch_size=8, learning_rate=1e-2, patience=60, verbose=0, space=False)
    return captioner


def test_trained_model_learns_the_captions(trained, data):
    train, _ = data
    captions = trained.caption([s.image for s in train])
    correct = sum(c in s.captions for c, s in zip(captions, train))
    assert correct >= 0.75 * len(train), captions


def test_beam_of_one_is_greedy_and_beam_search_gives_valid_captions(trained, data):
    images = [s.image for s in data[0]]
    greedy = trained.caption(images)
    assert trained.caption(images, beam_width=1) == greedy
    beam = trained.caption(images, beam_width=3)
    assert len(beam) == len(images)
    correct = sum(c in s.captions for c, s in zip(beam, data[0]))
    assert correct >= 0.75 * len(images), beam


def test_save_load_round_trip_gives_identical_captions(trained, data, tmp_path):
    images = [s.image for s in data[0]]
    before = trained.caption(images, beam_width=2)
    trained.save(tmp_path / "model")
    for name in (
        "decoder.keras",
        "encoder.weights.h5",
        "vocabulary.json",
        "manifest.json",
        "history.json",
        "training.png",
    ):
        assert (tmp_path / "model" / name).is_file(), name
    loaded = Captioner.load(tmp_path / "model", feature_cache=False)  # recompute features from pixels
    assert loaded.caption(images, beam_width=2) == before
    assert loaded.encoder.config() == trained.encoder.config()
    assert loaded.model_dir == trained.model_dir == str((tmp_path / "model").absolute())


def test_one_optimizer_step_per_batch_of_images(data):
    train, val = data  # 24 images with 2 captions each, batch 8 -> 3 steps an epoch
    captioner = Captioner("lstm", **TINY)
    captioner.fit(train, val, epochs=2, batch_size=8, patience=5, verbose=0, space=False)
    assert int(captioner.decoder.optimizer.iterations) == 2 * 3
    assert len(captioner.history["loss"]) == 2


@pytest.mark.slow
def test_same_seed_same_weights(data):
    train, val = data
    weights = []
    for _ in range(2):
        captioner = Captioner("transformer", **TINY)
        captioner.fit(train, val, epochs=2, batch_size=8, verbose=0, space=False)
        weights.append(captioner.decoder.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_the_best_weights(data):
    train, val = data
    captioner = Captioner("transformer", **TINY)
    history = captioner.fit(train, val, epochs=6, batch_size=8, learning_rate=0.3, patience=1, verbose=0, space=False)
    best = min(history["val_loss"])
    from gemcaption.captioning.training import caption_array

    grids, _ = captioner.encode([s.image for s in val])
    tokens = caption_array([s.captions for s in val], captioner.vocabulary, captioner.seq_len)
    result = captioner.decoder.evaluate((grids, tokens[:, :, :-1]), tokens[:, :, 1:], verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(best, rel=1e-4)


def test_feature_cache_means_the_cnn_runs_once_per_image(data, monkeypatch, tmp_path):
    train, _ = data
    captioner = Captioner("lstm", **TINY)
    captioner.fit(train[:8], train[8:12], epochs=1, batch_size=8, verbose=0, space=False)
    calls = []
    original = type(captioner.encoder).features

    def counting(self, images, *args, **kwargs):
        calls.append(len(images))
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(type(captioner.encoder), "features", counting)
    captioner.caption([s.image for s in train[:12]])  # all cached during fit
    assert calls == []
    tiny_space = {"epochs": 1, "dim": 8, "word_dim": 8, "hidden_dim": 8, "min_count": 1}
    captioner.fit_space(train[:8], train[8:12], config=tiny_space, verbose=0)  # the space reads the cache too
    assert calls == [] and captioner.space.history["images"] == 8
    fresh = []
    for i in range(2):  # pixels never seen by this test session
        fresh.append(str(tmp_path / f"noise{i}.png"))
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(fresh[-1])
    captioner.caption(fresh)  # new images: encoded once...
    captioner.caption(fresh)  # ...and then read from the cache
    assert calls == [2]


def test_unreadable_images_are_skipped_or_refused(trained, data, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    out = trained.caption([data[0][0].image, str(bad)])
    assert out[0] and out[1] is None
    with pytest.raises(ImageError):
        trained.image_features([str(bad)])


def test_untrained_and_missing_models_are_clear_errors(tmp_path):
    with pytest.raises(ModelError):
        Captioner("lstm", **TINY).caption([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ModelError):
        Captioner.load(tmp_path / "nothing")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelError):
        Captioner.load(tmp_path / "x")
    with pytest.raises(UnknownNameError, match="unknown decoder 'gru'; choose one of: transformer, lstm"):
        Captioner("gru")


def test_settings_are_one_config_whose_defaults_are_the_dataclasses():
    from gemcaption.captioning.config import CaptionerConfig, DecoderConfig, EncoderConfig

    assert Captioner().config == CaptionerConfig()
    assert Captioner().config.encoder == EncoderConfig("efficientnet_lite0", 224, "imagenet")
    captioner = Captioner("lstm", encoder="b0", image_size=64, weights=None, embed_dim=16, seed=4)
    assert captioner.config == CaptionerConfig(
        encoder=EncoderConfig("efficientnetb0", 64, None), decoder=DecoderConfig("lstm", embed_dim=16), seed=4
    )
    base = CaptionerConfig(decoder=DecoderConfig(ff_dim=64), vocab_size=99)
    assert Captioner(config=base, ff_dim=32).config == base.replace(decoder=base.decoder.replace(ff_dim=32))
    assert Captioner(config=base.get_config()).config == base
    assert captioner.decoder_name == "lstm" and captioner.seq_len == 25


def test_fit_settings_are_a_training_config_with_keyword_overrides(data):
    from gemcaption.captioning.config import TrainingConfig

    train, val = data
    captioner = Captioner("lstm", **TINY)
    captioner.fit(train[:8], val[:4], epochs=1, batch_size=8, verbose=0, space=False)
    assert captioner.training_config == TrainingConfig(epochs=1, batch_size=8)
    captioner.fit(
        train[:8],
        val[:4],
        config=TrainingConfig(epochs=1, batch_size=4, decay="constant"),
        patience=0,
        verbose=0,
        space=False,
    )
    assert captioner.training_config == TrainingConfig(epochs=1, batch_size=4, decay="constant", patience=0)
    assert int(captioner.decoder.optimizer.iterations) == 2  # 8 images in batches of 4
    with pytest.raises(ValueError, match="batch_size"):
        captioner.fit(train[:8], val[:4], batch_size=0, verbose=0, space=False)


def test_training_streams_features_from_shards_unless_they_stay_in_memory(data, monkeypatch, tmp_path):
    from gemcaption.captioning import streaming
    from gemcaption.captioning.features import memory_features

    monkeypatch.setenv("GEMCAPTION_CACHE", str(tmp_path / "cache"))
    streamed = []
    original = streaming.training_batches
    monkeypatch.setattr(streaming, "training_batches", lambda *a, **k: streamed.append(len(a[0])) or original(*a, **k))
    train, val = data
    Captioner("lstm", **TINY).fit(train[:8], val[:4], epochs=1, batch_size=8, verbose=0, space=False)
    assert streamed == [4, 8]  # validation and training batches both read from the shards
    assert len(list((tmp_path / "cache").glob("features/*/shards/*/shard-*.npy"))) == 2
    streamed.clear()
    with memory_features():
        Captioner("lstm", **TINY).fit(train[:8], val[:4], epochs=1, batch_size=8, verbose=0, space=False)
    assert streamed == []
