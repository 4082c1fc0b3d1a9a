"""An index built with the learned space answers text and image queries, saves and loads, and is
honest at the edges (empty query, no known word)."""

from pathlib import Path

import numpy as np
import pytest
from fakes import FakeCaptioner, write_shapes

from gemcaption.errors import QueryError
from gemcaption.retrieval.embedders import load_embedder
from gemcaption.retrieval.retriever import Retriever
from gemcaption.space import CaptionSpace, SpaceConfig
from gemcaption.space.embedder import SpaceEmbedder

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


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    rows = write_shapes(tmp_path_factory.mktemp("shapes"), per_kind=2)
    paths = [r[0] for r in rows]
    captions = [r[1] for r in rows]
    features = FakeCaptioner().image_features(paths)
    space = CaptionSpace.fit(features, captions, None, None, SpaceConfig(epochs=15, **TINY), verbose=0)
    return paths, captions, [r[2] for r in rows], SpaceEmbedder(space)


def test_space_index_answers_text_and_image_queries(shapes, tmp_path):
    paths, captions, labels, embedder = shapes
    retriever = Retriever(FakeCaptioner(), embedder=embedder, progress=False).build(
        paths, captions=captions, labels=labels
    )
    hits = retriever.search_text("a red circle", k=3)
    assert hits and hits[0].label == "red"
    for path, label in zip(paths, labels):  # 4 images of each colour (2 shapes x 2 shifts), 16 in all
        found = retriever.search_image(path, k=4)
        assert str(Path(path).absolute()) in [h.image for h in found]
        assert found[0].label == label
    retriever.save(tmp_path / "index")
    loaded = Retriever.load(tmp_path / "index", captioner=FakeCaptioner(), progress=False)
    assert isinstance(loaded.embedder, SpaceEmbedder)
    again = loaded.search_text("a red circle", k=3)
    assert [h.id for h in again] == [h.id for h in hits]
    np.testing.assert_allclose([h.score for h in again], [h.score for h in hits], atol=1e-6)


def test_space_embedder_round_trip(shapes, tmp_path):
    embedder = shapes[3]
    embedder.save(tmp_path / "embedder")
    loaded = load_embedder(tmp_path / "embedder")
    np.testing.assert_array_equal(loaded.transform(["a blue square"]), embedder.transform(["a blue square"]))
    assert loaded.fusion == embedder.fusion


def test_empty_and_unknown_text_queries(shapes):
    paths, captions, labels, embedder = shapes
    retriever = Retriever(FakeCaptioner(), embedder=embedder, progress=False).build(paths, captions=captions)
    with pytest.raises(QueryError, match="empty"):
        retriever.search_text("   ")
    assert retriever.search_text("zzz qwerty") == []
    assert not retriever.knows_words("zzz qwerty") and retriever.knows_words("red zzz")


def test_tie_order_does_not_depend_on_k(shapes, tmp_path):
    from fakes import draw
    from PIL import ImageOps

    embedder = shapes[3]
    paths = []
    for shift in (1, 2, 3, 4):  # each image and its mirror: same features, same caption, so exact ties
        image = draw("red", "square", 32, shift=shift)
        for name, picture in ((f"a{shift}.png", image), (f"b{shift}.png", ImageOps.mirror(image))):
            picture.save(tmp_path / name)
            paths.append(str(tmp_path / name))
    retriever = Retriever(FakeCaptioner(), embedder=embedder, progress=False)
    retriever.build(paths, captions=[["a red square"]] * len(paths))
    full = retriever.search_text("a red square", k=len(paths))
    assert len({h.score for h in full}) < len(full)  # there are ties
    for k in range(1, len(paths)):
        assert [h.id for h in retriever.search_text("a red square", k=k)] == [h.id for h in full[:k]]
    for a, b in zip(full, full[1:]):
        assert a.score > b.score or a.id < b.id  # ties: lower id first


def test_cli_warns_about_a_text_with_no_known_word(tmp_path, capsys, monkeypatch):
    from fakes import make_image

    import gemcaption.captioning.captioner
    from gemcaption.cli import main

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", FakeCaptioner.load)
    FakeCaptioner().save(tmp_path / "model")
    paths = [make_image(tmp_path / f"{i}.png", rgb, i) for i, rgb in enumerate([(230, 40, 30), (20, 30, 220)])]
    Retriever(FakeCaptioner(), model_dir=tmp_path / "model", progress=False).build(paths).save(tmp_path / "idx")
    assert main(["search", "--index", str(tmp_path / "idx"), "--text", "zzz qwerty", "--json"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "[]" and "no word of 'zzz qwerty' is known" in out.err
    assert main(["search", "--index", str(tmp_path / "idx"), "--text", "red stone"]) == 0
    assert "warning" not in capsys.readouterr().err
