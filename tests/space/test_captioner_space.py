"""A captioner trained with its caption space: Captioner.fit trains both, save/load keeps the space
(identical vectors, fusion weights, no Keras warning), ``--no-space`` (``space=False``) turns it off,
and an index built from the model (API or CLI) uses the space and records its fusion weights."""

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from fakes import write_shapes
from PIL import Image

import gemcaption  # noqa: F401  (sets the Keras backend)
from gemcaption.captioning.captioner import Captioner
from gemcaption.cli import main
from gemcaption.data.loaders import Sample
from gemcaption.retrieval.retriever import Retriever
from gemcaption.space.embedder import SpaceEmbedder
from gemcaption.space.fusion import Fusion

TINY = dict(
    encoder="efficientnet_lite0",
    image_size=64,
    weights="imagenet",
    embed_dim=16,
    ff_dim=16,
    num_heads=2,
    seq_len=8,
    dropout=0.0,
    seed=3,
)
TINY_SPACE = {
    "dim": 16,
    "word_dim": 16,
    "hidden_dim": 32,
    "batch_size": 16,
    "learning_rate": 5e-3,
    "dropout": 0.0,
    "min_count": 1,
    "epochs": 30,
    "patience": 30,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rows = write_shapes(tmp_path_factory.mktemp("shapes"), per_kind=3)
    samples = [Sample(image=p, captions=tuple(c), label=label, split="train") for p, c, label in rows]
    return samples, samples[1::3]


@pytest.fixture(scope="module")
def trained(data):
    train, val = data
    captioner = Captioner("lstm", **TINY)
    captioner.fit(train, val, epochs=2, batch_size=8, verbose=0, space_config=TINY_SPACE)
    return captioner


def test_fit_trains_the_space_on_the_same_split_and_chooses_the_fusion(trained, data):
    space = trained.space
    assert space is not None and space.config.dim == 16
    history = space.history
    assert history["images"] == len(data[0]) and len(history["dev_r1"]) == history["epochs_run"]
    assert history["loss"][-1] < history["loss"][0]
    assert isinstance(space.fusion, Fusion) and history["fusion"]["chosen_on"] == "validation"
    assert history["fusion"]["images"] == len(data[1])
    paths = [s.image for s in data[0]]
    features, _ = trained.encode(paths)
    scores = space.embed_texts([s.captions[0] for s in data[0]]) @ space.embed_images(features).T
    kinds = np.array([s.captions[0] for s in data[0]])  # 3 shifted drawings of each coloured shape
    same_kind = np.mean(kinds[np.argmax(scores, axis=1)] == kinds)
    assert same_kind >= 0.75  # chance: 1/8


def test_save_and_load_keep_the_space_with_identical_vectors(trained, data, tmp_path):
    target = trained.save(tmp_path / "model")
    manifest = json.loads((target / "manifest.json").read_text())
    assert {"space/manifest.json", "space/space.keras", "space/vocabulary.json"} <= set(manifest["files"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Keras' "unbuilt state" warning on load
        loaded = Captioner.load(target)
    texts = ["a red circle", "a square in blue", "zzz"]
    np.testing.assert_array_equal(loaded.space.embed_texts(texts), trained.space.embed_texts(texts))
    features, _ = trained.encode([s.image for s in data[0]])
    np.testing.assert_array_equal(loaded.space.embed_images(features), trained.space.embed_images(features))
    assert loaded.space.fusion == trained.space.fusion
    assert loaded.space.history == json.loads(json.dumps(trained.space.history))
    loaded.save(tmp_path / "again")  # a loaded model saves its space again
    assert (tmp_path / "again" / "space" / "space.keras").is_file()


def write_catalogue(root: Path, data) -> Path:
    """A ``csv:`` catalogue of the drawings: every fourth image in the "val" split."""
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption", "split"])
        for i, sample in enumerate(data[0]):
            for caption in sample.captions:
                writer.writerow([sample.image, caption, "val" if i % 4 == 0 else "train"])
    return root / "captions.csv"


def test_cli_no_space_trains_none_and_its_index_falls_back_to_tfidf(data, tmp_path, capsys):
    manifest = write_catalogue(tmp_path, data)
    out = tmp_path / "model"
    small = ["--epochs", "1", "--batch-size", "8", "--image-size", "64", "--embed-dim", "16", "--ff-dim", "16"]
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                f"csv:{manifest}",
                "--allow-outside",
                "--decoder",
                "lstm",
                "--out",
                str(out),
                *small,
                "--no-space",
            ]
        )
        == 0
    )
    assert not (out / "space").exists() and Captioner.load(out).space is None
    index = tmp_path / "index"
    assert (
        main(
            ["index", "build", "--model", str(out), "--data", f"csv:{manifest}", "--allow-outside", "--out", str(index)]
        )
        == 0
    )
    assert "tfidf_svd (the model has no learned space)" in capsys.readouterr().err
    assert json.loads((index / "manifest.json").read_text())["config"]["embedder"]["kind"] == "tfidf_svd"


def test_cli_index_build_uses_the_space_and_records_its_fusion(trained, data, tmp_path, capsys):
    manifest = write_catalogue(tmp_path, data)
    model = trained.save(tmp_path / "model")
    index = tmp_path / "index"
    assert (
        main(
            [
                "index",
                "build",
                "--model",
                str(model),
                "--data",
                f"csv:{manifest}",
                "--allow-outside",
                "--out",
                str(index),
            ]
        )
        == 0
    )
    assert "learned space, fusion weights" in capsys.readouterr().err
    embedder = json.loads((index / "manifest.json").read_text())["config"]["embedder"]
    assert embedder["kind"] == "caption_space" and embedder["fusion"] == trained.space.fusion.get_config()
    assert main(["search", "--index", str(index), "--text", "a blue square", "-k", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and "blue" in hits[0]["caption"] + hits[0]["image"]


def test_index_from_a_space_model_answers_text_and_image_queries(trained, data, tmp_path):
    target = trained.save(tmp_path / "model")
    paths = [s.image for s in data[0]]
    retriever = Retriever(Captioner.load(target), progress=False).build(data[0])
    assert isinstance(retriever.embedder, SpaceEmbedder)
    assert retriever.embedder.fusion == trained.space.fusion
    hits = retriever.search_text("a red circle", k=3)
    assert hits and hits[0].label == "red"
    for sample in data[0][::5]:  # each drawing has two look-alikes (shifted by 1 and 2 pixels)
        found = retriever.search_image(sample.image, k=3)
        assert str(Path(sample.image).absolute()) in [h.image for h in found]
        assert found[0].captions[0] == sample.captions[0]  # the same coloured shape
    assert retriever.search_text("zzz qwerty") == []
    retriever.save(tmp_path / "index")
    config = json.loads((tmp_path / "index" / "manifest.json").read_text())["config"]
    assert config["embedder"]["kind"] == "caption_space"
    assert config["embedder"]["fusion"] == trained.space.fusion.get_config()
    loaded = Retriever.load(tmp_path / "index", progress=False)
    assert loaded.embedder.fusion == trained.space.fusion
    again = loaded.search_image(paths[0], k=4)
    assert [h.id for h in again] == [h.id for h in retriever.search_image(paths[0], k=4)]


def test_an_image_query_runs_the_encoder_once_and_scores_as_its_parts(trained, data, monkeypatch):
    retriever = Retriever(trained, progress=False, hybrid_weight=0.3).build(data[0])
    image = np.asarray(Image.open(data[0][4].image).convert("RGB"))  # an array: no cached features by path
    calls = []
    encode = trained.encode
    monkeypatch.setattr(trained, "encode", lambda images, **kw: calls.append(len(images)) or encode(images, **kw))
    found = retriever.search_image(image, k=5)
    assert calls == [1]  # caption, projection and visual features all from one pass
    monkeypatch.setattr(trained, "encode", encode)
    caption = trained.caption([image])
    embedder = retriever.embedder
    query = embedder.image_query(embedder.transform(caption), embedder.projections(trained, [image]))
    visual = trained.image_features([image]) - retriever.visual_mean
    expected = retriever._search_vectors(query, 5, visual / np.linalg.norm(visual, axis=1, keepdims=True))[0]
    assert [h.id for h in found] == [h.id for h in expected]
    np.testing.assert_allclose([h.score for h in found], [h.score for h in expected], atol=1e-5)
