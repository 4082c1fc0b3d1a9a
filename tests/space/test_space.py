"""The learned caption space on tiny drawn data: it learns, beats chance, saves and loads exactly,
refuses damaged files, and keeps accents."""

import numpy as np
import pytest
from fakes import COLOURS, SHAPES, draw

from gemcaption.errors import ConfigError, ModelError
from gemcaption.space import CaptionSpace, SpaceConfig, is_space_directory
from gemcaption.space.training import t2i_recalls

TINY = {
    "dim": 16,
    "word_dim": 16,
    "hidden_dim": 32,
    "batch_size": 16,
    "learning_rate": 5e-3,
    "dropout": 0.0,
    "min_count": 1,
    "weight_decay": 1e-4,
}


def drawn_pairs(per_kind=2):
    """Feature 'grids' of drawn images (2x2 cells of mean RGB) and their captions."""
    grids, captions = [], []
    for colour in COLOURS:
        for shape in SHAPES:
            for i in range(per_kind):
                pixels = np.asarray(draw(colour, shape, 32, shift=i), np.float32) / 255.0
                cells = pixels.reshape(2, 16, 2, 16, 3).mean(axis=(1, 3)).reshape(4, 3)
                centre = pixels[12:20, 12:20].mean(axis=(0, 1))
                grids.append(np.concatenate([cells, np.repeat(centre[None], 4, 0), cells**2], axis=1))
                captions.append([f"a {colour} {shape}", f"the {shape} is {colour}"])
    return np.stack(grids).astype(np.float32), captions


@pytest.fixture(scope="module")
def trained():
    grids, captions = drawn_pairs()
    space = CaptionSpace.fit(grids, captions, grids, captions, SpaceConfig(epochs=15, patience=15, **TINY), verbose=0)
    return space, grids, captions


def test_loss_decreases_and_retrieval_beats_chance(trained):
    space, grids, captions = trained
    assert space.history["loss"][-1] < 0.7 * space.history["loss"][0]
    recalls = t2i_recalls(space, grids, captions)
    # 16 images, each colour+shape twice: chance R@1 is 1/16, a caption can at best pick one of the 2 look-alikes
    assert recalls["r1"] >= 0.25  # 4x chance
    assert recalls["r5"] >= 0.9


def test_vectors_are_unit_and_unknown_text_is_zero(trained):
    space = trained[0]
    vectors = space.embed_texts(["a red square", "qwerty zzz", ""])
    assert np.allclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)
    assert not vectors[1].any() and not vectors[2].any()
    assert space.known_words("a red qwerty") == 2
    assert np.allclose(np.linalg.norm(space.embed_images(trained[1][:3]), axis=1), 1.0, atol=1e-5)


def test_save_load_gives_identical_vectors(trained, tmp_path):
    space, grids, _ = trained
    target = space.save(tmp_path / "model" / "space")
    assert is_space_directory(target) and not is_space_directory(tmp_path)
    loaded = CaptionSpace.load(target)
    texts = ["a blue circle", "the square is green"]
    np.testing.assert_array_equal(loaded.embed_texts(texts), space.embed_texts(texts))
    np.testing.assert_array_equal(loaded.embed_images(grids), space.embed_images(grids))
    assert loaded.config == space.config and loaded.history["best_epoch"] == space.history["best_epoch"]


def test_damaged_file_is_a_model_error(trained, tmp_path):
    target = trained[0].save(tmp_path / "space")
    (target / "space.keras").write_bytes(b"not a keras file")
    with pytest.raises(ModelError, match="damaged"):
        CaptionSpace.load(target)
    with pytest.raises(ModelError):
        CaptionSpace.load(tmp_path / "missing")


@pytest.mark.parametrize(
    "settings",
    [
        {"text_encoder": "gru"},
        {
            "text_encoder": "transformer",
            "image_pooling": "attention",
            "hard_negative_weight": 0.5,
            "learn_temperature": False,
        },
    ],
)
def test_other_variants_train_and_keep_accents(settings):
    grids, _ = drawn_pairs(per_kind=1)
    captions = [["anillo pequeño"], ["colgante de plata"], ["pendientes rojos"], ["pulsera"]] * 2
    space = CaptionSpace.fit(grids[:8], captions, None, None, SpaceConfig(epochs=2, **TINY, **settings), verbose=0)
    assert "pequeño" in space.vocabulary.words
    assert space.known_words("Anillo PEQUEÑO") == 2
    assert space.embed_texts(["anillo pequeño"]).shape == (1, 16)
    assert len(space.history["loss"]) == 2


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="text_encoder"):
        SpaceConfig(text_encoder="lstm")
    with pytest.raises(ConfigError, match="temperature"):
        SpaceConfig(temperature=0)
    assert SpaceConfig.from_config(SpaceConfig(dim=64).get_config()) == SpaceConfig(dim=64)


def test_fit_space_for_captioner_uses_its_features_and_saves_inside_the_model(tmp_path):
    from fakes import FakeCaptioner, write_shapes

    from gemcaption.data.types import Dataset, Sample
    from gemcaption.space.training import SPACE_SUBDIRECTORY, fit_space_for_captioner

    class EncodingCaptioner(FakeCaptioner):
        def encode(self, images, progress=False):
            self.encoded = len(images)
            self.images = list(images)
            return self.image_features(images)[:, None, :], list(range(len(images)))

        def caption_features(self, grids, sampler=None):  # the validation images: the last ones encoded
            return self.caption(self.images)

    rows = write_shapes(tmp_path / "images", per_kind=1)
    data = Dataset([Sample(path, tuple(caps), label) for path, caps, label in rows])
    captioner = EncodingCaptioner()
    space = fit_space_for_captioner(captioner, data, data, SpaceConfig(epochs=2, **TINY), verbose=0)
    assert captioner.encoded == len(rows) and space.channels == 6
    assert len(space.history["dev_r1"]) == 2
    assert space.history["fusion"]["chosen_on"] == "validation" and space.fusion is not None
    saved = space.save(tmp_path / "model" / SPACE_SUBDIRECTORY)
    assert CaptionSpace.load(saved).embed_texts(["a red square"]).shape == (1, 16)


def test_captioner_directory_keeps_the_space_atomically_and_loads_it_without_warnings(trained, tmp_path):
    import json
    import warnings

    from gemcaption.captioning.captioner import Captioner
    from gemcaption.captioning.decoders import build_decoder
    from gemcaption.captioning.vocabulary import Vocabulary
    from gemcaption.space.fusion import Fusion

    space, grids, _ = trained
    space.fusion = Fusion(1.0, 0.25, 0.5, 0.25)
    captioner = Captioner("lstm", image_size=32, weights=None, embed_dim=8, ff_dim=8, seq_len=5)
    captioner.vocabulary = Vocabulary(["red", "square"])
    captioner.decoder = build_decoder(
        "lstm", vocab_size=len(captioner.vocabulary), **captioner.config.decoder.hyper_parameters()
    )
    captioner.decoder((np.zeros((1, 1, 1280), "float32"), np.zeros((1, 1, 5), "int32")))
    captioner.space = space
    target = captioner.save(tmp_path / "model")
    files = json.loads((target / "manifest.json").read_text())["files"]
    assert {"space/manifest.json", "space/space.keras", "space/vocabulary.json", "space/history.json"} <= set(files)
    captioner.save(target)  # saved again over itself: the space is still there
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Keras "unbuilt state" warning
        loaded = Captioner.load(target)
    np.testing.assert_array_equal(loaded.space.embed_texts(["a red square"]), space.embed_texts(["a red square"]))
    np.testing.assert_array_equal(loaded.space.embed_images(grids), space.embed_images(grids))
    assert loaded.space.fusion == space.fusion
    from gemcaption.retrieval.embedders import default_embedder

    assert default_embedder(loaded).fusion == space.fusion  # what a Retriever given no embedder uses
    assert default_embedder(None, target).kind == "caption_space"  # from the directory, no decoder loaded
    assert default_embedder(None, tmp_path).kind == "tfidf_svd"
    (target / "space" / "space.keras").write_bytes(b"damaged")
    with pytest.raises(ModelError, match="damaged"):
        Captioner.load(target)


def test_choose_fusion_uses_held_out_captions_and_needs_enough_images(trained):
    from gemcaption.space.fusion import MIN_IMAGES, choose_fusion

    space, grids, captions = trained
    four = [caps * 2 for caps in captions]  # 4 captions: 2 in the gallery, 2 queries per image
    fusion, report = choose_fusion(space.embed_texts, space.embed_images(grids), [c[0] for c in captions], four)
    assert fusion is not None and fusion.image == 1.0
    assert report["images"] == len(grids) and report["queries"] == 2 * len(grids)
    assert 0 < report["t2i_r1_r5_r10_sum"] <= 3 and 0 < report["i2t_map"] <= 1
    assert fusion.reference > 0  # the gallery's half holds the very captions queried: they must help
    few = [caps if i < MIN_IMAGES - 1 else caps[:1] for i, caps in enumerate(captions)]
    fusion, report = choose_fusion(space.embed_texts, space.embed_images(grids), [c[0] for c in captions], few)
    assert fusion is None and report["chosen_on"] is None
