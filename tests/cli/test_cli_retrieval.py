"""``gemcaption search`` / ``index add|remove|info`` in-process on an index built with a fake captioner."""

import json
from pathlib import Path

import pytest
from fakes import FakeCaptioner, make_image

from gemcaption.cli import main
from gemcaption.retrieval.retriever import Retriever


@pytest.fixture
def saved_index(tmp_path, monkeypatch):
    import gemcaption.captioning.captioner

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", FakeCaptioner.load)
    FakeCaptioner().save(tmp_path / "model")
    paths = [
        make_image(tmp_path / f"{name}.png", rgb, i)
        for i, (name, rgb) in enumerate(
            {"ruby": (230, 40, 30), "emerald": (20, 200, 40), "sapphire": (20, 30, 220)}.items()
        )
    ]
    retriever = Retriever(FakeCaptioner(), model_dir=tmp_path / "model", progress=False).build(paths)
    retriever.save(tmp_path / "idx")
    return tmp_path / "idx", paths


def test_search_text_json(saved_index, capsys):
    index, paths = saved_index
    assert main(["search", "--index", str(index), "--text", "bright blue stone", "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 2 and set(rows[0]) == {"id", "image", "score", "caption"}
    assert rows[0]["id"] == 2 and rows[0]["image"] == str(Path(paths[2]).absolute())
    assert rows[0]["caption"] == "a bright blue stone" and rows[0]["score"] >= rows[1]["score"]


def test_search_image_uses_the_saved_captioner_reference(saved_index, capsys):
    index, paths = saved_index
    assert main(["search", "--index", str(index), "--image", paths[1], "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["id"] == 1 and rows[0]["score"] == pytest.approx(1.0, abs=1e-5) and len(rows) == 3
    assert main(["search", "--index", str(index), "--text", "red"]) == 0
    assert "a bright red stone" in capsys.readouterr().out.splitlines()[0]


def test_bad_query_image_is_one_error_line(saved_index, capsys, tmp_path):
    index, _ = saved_index
    assert main(["search", "--index", str(index), "--image", str(tmp_path / "nope.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.jpg" in err[0] and err[0].startswith("gemcaption: error:")
    assert main(["search", "--index", str(tmp_path / "no-index"), "--text", "red"]) == 2


def test_index_add_remove_info(saved_index, capsys, tmp_path):
    index, paths = saved_index
    new = make_image(tmp_path / "garnet.png", (100, 15, 10), 9)
    assert main(["-q", "index", "add", str(index), new, paths[0]]) == 0
    assert capsys.readouterr().out.split() == ["3", new, "0", paths[0]]
    assert main(["-q", "index", "remove", str(index), "0", "7"]) == 0
    assert main(["index", "info", str(index)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 3 and info["index"] == "Flat"
    assert (info["format"], info["format_version"]) == ("gemcaption-index", 2) and info["use_references"] is True
    assert main(["search", "--index", str(index), "--text", "red", "--json"]) == 0
    assert [row["id"] for row in json.loads(capsys.readouterr().out)][0] == 3


def test_index_build_from_a_folder(tmp_path, capsys, monkeypatch):
    import gemcaption.captioning.captioner

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", FakeCaptioner.load)
    FakeCaptioner().save(tmp_path / "model")
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    make_image(tmp_path / "photos" / "a.png", (230, 40, 30), 1)
    make_image(tmp_path / "photos" / "sub" / "b.jpg", (20, 30, 220), 2)
    (tmp_path / "photos" / "readme.txt").write_text("not an image")
    out = tmp_path / "idx"
    assert (
        main(
            [
                "-q",
                "index",
                "build",
                "--model",
                str(tmp_path / "model"),
                "--images",
                str(tmp_path / "photos"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(Retriever.load(out)) == 2
    assert (
        main(
            [
                "index",
                "build",
                "--model",
                str(tmp_path / "no-model"),
                "--images",
                str(tmp_path / "photos"),
                "--out",
                str(out),
            ]
        )
        == 2
    )


def write_manifest(tmp_path):
    """A CSV dataset whose reference captions are what the fake captioner says, with labels."""
    specs = [
        ("ruby", (230, 40, 30), "a bright red stone", "Ruby", "test"),
        ("garnet", (100, 15, 10), "a dark red stone", "Ruby", "test"),
        ("emerald", (20, 200, 40), "a bright green stone", "Emerald", "test"),
        ("sapphire", (20, 30, 220), "a bright blue stone", "Sapphire", "test"),
        ("spinel", (200, 30, 60), "a pink red gem", "Ruby", "train"),
        ("jade", (30, 120, 40), "a green jade carving", "Emerald", "train"),
    ]
    rows = ["image,caption,label,split"]
    for i, (name, rgb, caption, label, split) in enumerate(specs):
        make_image(tmp_path / f"{name}.png", rgb, i)
        rows.append(f"{name}.png,{caption},{label},{split}")
    rows.append("ruby.png,a shiny red gem,Ruby,test")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{tmp_path / 'data.csv'}"


def test_evaluate_json_has_every_figure_and_chance_levels(tmp_path, capsys, monkeypatch):
    import gemcaption.captioning.captioner

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", FakeCaptioner.load)
    FakeCaptioner().save(tmp_path / "model")
    spec = write_manifest(tmp_path)
    assert main(["-q", "evaluate", "--model", str(tmp_path / "model"), "--data", spec, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    expected = {"bleu1", "bleu2", "bleu3", "bleu4", "tfidf_cosine", "cat_map", "cat_p10"}
    expected |= {f"{d}_{m}" for d in ("i2t", "t2i") for m in ("r1", "r5", "r10", "map", "medr")}
    assert expected <= set(figures) and figures["images"] == 4 and figures["embedder_fitted_on"] == "train references"
    assert figures["bleu1"] == pytest.approx(1.0)  # every generated caption equals a reference
    # "bright"/"dark" are not in the train-split vocabulary: the two red stones tie, the first wins
    assert figures["t2i_r1"] == pytest.approx(4 / 5) and figures["t2i_r5"] == 1.0 and figures["t2i_medr"] == 1.0
    assert figures["i2t_r10"] == 1.0 and figures["i2t_r1_chance"] == pytest.approx(0.25)
    assert figures["cat_queries"] == 2 and figures["cat_map"] == 1.0  # the two reds find each other first
    assert figures["cat_map_chance"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--data", spec, "--split", "nope"]) == 2
    assert main(["-q", "evaluate", "--model", str(tmp_path / "model"), "--data", spec]) == 0
    assert "(chance 0.2500)" in capsys.readouterr().out


def test_index_build_from_a_dataset_split(tmp_path, monkeypatch):
    import gemcaption.captioning.captioner

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", FakeCaptioner.load)
    FakeCaptioner().save(tmp_path / "model")
    spec = write_manifest(tmp_path)
    out = tmp_path / "idx"
    assert (
        main(
            [
                "-q",
                "index",
                "build",
                "--model",
                str(tmp_path / "model"),
                "--data",
                spec,
                "--split",
                "test",
                "--out",
                str(out),
                "--dim",
                "8",
            ]
        )
        == 0
    )
    retriever = Retriever.load(out)
    assert len(retriever) == 4 and "jade" in retriever.embedder.vocabulary  # fitted on the train split
    hit = retriever.search("shiny gem", k=1)[0]
    assert hit.label == "Ruby" and "a shiny red gem" in hit.captions


def test_retrieval_figures_on_hand_made_captions():
    from gemcaption.evaluation.protocols import retrieval_figures

    generated = ["a red ruby", "a blue sapphire", "a green emerald", "a red garnet"]
    references = [("a red ruby",), ("a blue sapphire", "blue gem"), ("a green emerald",), ("a dark red garnet",)]
    figures = retrieval_figures(generated, references, labels=["red", "blue", "green", "red"])
    assert figures["i2t_r1"] == 1.0 and figures["t2i_queries"] == 5
    assert figures["t2i_r5"] == 1.0 and figures["i2t_medr_chance"] == 2.5
    assert figures["cat_map"] == 1.0 and figures["cat_queries"] == 2  # blue, green: no other same-label item
    swapped = retrieval_figures(generated[::-1], references, labels=None)
    assert swapped["i2t_r1"] < 1.0 and "cat_map" not in swapped
