"""Captioner directories: the version 2 layout round trip, the previous release's version 1
layout, clear errors for other versions and damaged files, and saves that survive a kill."""

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import TINY_CAPTIONER as TINY
from fakes import write_shapes
from kill_saves import kill_while_saving, leftovers, random_delays
from roundtrip import assert_round_trip

import gemcaption  # noqa: F401  (sets the Keras backend)
from gemcaption.captioning.captioner import Captioner
from gemcaption.captioning.config import CaptionerConfig
from gemcaption.captioning.saving import FORMAT, is_captioner_directory, saved_config
from gemcaption.data.loaders import Sample
from gemcaption.errors import ModelError


def write_v1_model_dir(captioner: Captioner, path: Path) -> Path:
    """The directory ``Captioner.save`` wrote before format version 2, file for file: no manifest,
    the settings in ``config.json`` (json.dumps indent 2), files written in place."""
    path.mkdir(parents=True, exist_ok=True)
    encoder = captioner.encoder
    captioner.decoder.save(path / "decoder.keras")
    encoder.model.save_weights(path / "encoder.weights.h5")
    words = captioner.vocabulary.words
    (path / "vocabulary.json").write_text(json.dumps({"words": words}, ensure_ascii=False, indent=0), encoding="utf-8")
    decoder = captioner.config.decoder
    config = {
        "format": "gemcaption-captioner",
        "format_version": 1,
        "decoder": decoder.kind,
        "decoder_config": {
            "seq_len": decoder.seq_len,
            "embed_dim": decoder.embed_dim,
            "ff_dim": decoder.ff_dim,
            "num_heads": decoder.num_heads,
            "num_layers": decoder.num_layers,
            "dropout": decoder.dropout,
        },
        "vocab_size": captioner.config.vocab_size,
        "min_count": captioner.config.min_count,
        "seed": captioner.config.seed,
        "encoder": {
            "name": encoder.name,
            "image_size": encoder.image_size,
            "weights_id": encoder.weights_id,
            "weights_source": encoder.weights_source,
        },
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    if captioner.history:
        (path / "history.json").write_text(json.dumps(captioner.history, indent=1))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rows = write_shapes(tmp_path_factory.mktemp("shapes"), per_kind=2)
    return [Sample(image=p, captions=tuple(c), label=label, split="train") for p, c, label in rows]


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def captioner(request, images):
    captioner = Captioner(request.param, **TINY)
    captioner.fit(images, images[::4], epochs=3, batch_size=8, learning_rate=1e-2, verbose=0, space=False)
    return captioner


def same_behaviour(images):
    paths = [s.image for s in images]

    def compare(original, loaded):
        assert loaded.config == original.config
        assert loaded.encoder.config() == original.encoder.config()  # same feature-cache entries
        assert loaded.vocabulary.words == original.vocabulary.words
        for a, b in zip(original.decoder.get_weights(), loaded.decoder.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert loaded.caption(paths) == original.caption(paths)
        assert loaded.caption(paths, beam_width=2) == original.caption(paths, beam_width=2)
        assert loaded.history == original.history

    return compare


def test_version_2_round_trip_gives_identical_captions(captioner, images, tmp_path):
    target = tmp_path / "model"
    loaded = assert_round_trip(
        captioner,
        lambda c: c.save(target),
        lambda path: Captioner.load(path, feature_cache=False),
        same_behaviour(images),
    )
    assert loaded.model_dir == captioner.model_dir == str(target.absolute())
    manifest = json.loads((target / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"], manifest["kind"]) == (FORMAT, 2, captioner.decoder_name)
    weights = manifest["config"].pop("encoder_weights")
    assert manifest["config"] == captioner.config.get_config()
    assert weights["weights_id"] == captioner.encoder.weights_id
    assert set(manifest["files"]) == {
        "decoder.keras",
        "encoder.weights.h5",
        "vocabulary.json",
        "history.json",
        "training.png",
    }
    assert saved_config(target)["config"] == captioner.config.get_config()


def test_version_1_directory_of_the_previous_release_loads_and_captions_identically(captioner, images, tmp_path):
    old = write_v1_model_dir(captioner, tmp_path / "v1")
    assert is_captioner_directory(old) and not (old / "manifest.json").exists()
    assert saved_config(old)["format_version"] == 1
    loaded = Captioner.load(old, feature_cache=False)
    same_behaviour(images)(captioner, loaded)
    assert loaded.model_dir == str(old.absolute())
    # and saving it again writes the current format
    loaded.save(tmp_path / "v2")
    assert json.loads((tmp_path / "v2" / "manifest.json").read_text())["format_version"] == 2


def test_other_versions_and_damaged_directories_are_model_errors_naming_the_cause(captioner, tmp_path):
    target = captioner.save(tmp_path / "model")
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": 3}))
    with pytest.raises(ModelError, match="version 3 .*upgrade gemcaption"):
        Captioner.load(target)
    manifest_path.write_text(json.dumps(manifest))
    (target / "vocabulary.json").write_text('{"words": []}')
    with pytest.raises(ModelError, match="damaged: .*vocabulary.json"):
        Captioner.load(target)

    old = write_v1_model_dir(captioner, tmp_path / "v1")
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "format_version": 7}))
    with pytest.raises(ModelError, match="version 7"):
        Captioner.load(old)
    (old / "config.json").write_text(json.dumps(config))
    (old / "decoder.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="damaged: .*decoder.keras"):
        Captioner.load(old)
    with pytest.raises(ModelError, match="not a gemcaption model directory"):
        Captioner.load(tmp_path / "nothing")


def test_a_new_save_replaces_the_whole_directory(captioner, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "checkpoint.weights.h5").write_bytes(b"left by training")
    captioner.save(target)
    assert not (target / "checkpoint.weights.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging or backup directory left
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "ring.jpg").write_bytes(b"precious")
    with pytest.raises(ModelError, match="not a gemcaption model directory .*ring.jpg.*refusing"):
        captioner.save(photos)
    assert (photos / "ring.jpg").read_bytes() == b"precious"


# -- a kill at any moment of a save leaves a loadable directory --------------------------------------------------
TOY = '''
import numpy as np
from gemcaption.captioning.captioner import Captioner
from gemcaption.captioning.decoders import build_decoder
from gemcaption.captioning.vocabulary import Vocabulary


def toy(version):
    """A captioner whose every file says which version it is (seed, vocabulary, history)."""
    captioner = Captioner("lstm", encoder="efficientnet_lite0", image_size=32, weights=None, embed_dim=8, ff_dim=8,
                          seq_len=5, seed=version)
    captioner.vocabulary = Vocabulary([f"word{version}", "shared"])
    captioner.decoder = build_decoder("lstm", vocab_size=len(captioner.vocabulary),
                                      **captioner.config.decoder.hyper_parameters())
    captioner.decoder((np.zeros((1, 1, 1280), "float32"), np.zeros((1, 1, 5), "int32")))
    captioner.history = {"version": version}
    return captioner
'''
SAVER = (
    TOY
    + """
import sys

target = sys.argv[1]
versions = [toy(1), toy(2)]
versions[0].save(target)  # new content is in place before the kill can come...
print("READY", flush=True)
i = 1
while True:  # ...which then falls somewhere in one of these saves (each takes about 0.3 s)
    versions[i % 2].save(target)
    i += 1
"""
)


def load_toy_version(target: Path) -> int:
    loaded = Captioner.load(target, feature_cache=False)
    version = loaded.history["version"]
    assert loaded.config == CaptionerConfig.from_config({**loaded.config.get_config(), "seed": version})
    assert f"word{version}" in loaded.vocabulary.words  # every file from the same save
    return version


@pytest.mark.slow
def test_a_save_killed_at_random_moments_leaves_the_old_or_the_new_model(tmp_path):
    namespace: dict = {}
    exec(TOY, namespace)
    target = tmp_path / "model"
    namespace["toy"](0).save(target)
    for delay in random_delays(3, seed=10, high=0.5):
        kill_while_saving(SAVER, [str(target)], delay)
        assert load_toy_version(target) in (1, 2)  # never the initial version 0: the first save finished
    namespace["toy"](0).save(target)  # the next save clears whatever the kill left
    assert load_toy_version(target) == 0
    assert leftovers(target) == []
