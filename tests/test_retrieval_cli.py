"""``gemcaption search`` / ``index add|remove|info`` in-process on an index built with a fake captioner."""
import json
from pathlib import Path

import pytest
from test_index import FakeCaptioner, make_image

from gemcaption.cli import main
from gemcaption.index import Retriever


@pytest.fixture
def saved_index(tmp_path, monkeypatch):
    import gemcaption.captioner

    monkeypatch.setattr(gemcaption.captioner.Captioner, "load", FakeCaptioner.load)
    FakeCaptioner().save(tmp_path / "model")
    paths = [make_image(tmp_path / f"{name}.png", rgb, i)
             for i, (name, rgb) in enumerate({"ruby": (230, 40, 30), "emerald": (20, 200, 40),
                                             "sapphire": (20, 30, 220)}.items())]
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
    assert main(["search", "--index", str(index), "--text", "red", "--json"]) == 0
    assert [row["id"] for row in json.loads(capsys.readouterr().out)][0] == 3


def test_index_build_from_a_folder(tmp_path, capsys, monkeypatch):
    import gemcaption.captioner

    monkeypatch.setattr(gemcaption.captioner.Captioner, "load", FakeCaptioner.load)
    FakeCaptioner().save(tmp_path / "model")
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    make_image(tmp_path / "photos" / "a.png", (230, 40, 30), 1)
    make_image(tmp_path / "photos" / "sub" / "b.jpg", (20, 30, 220), 2)
    (tmp_path / "photos" / "readme.txt").write_text("not an image")
    out = tmp_path / "idx"
    assert main(["-q", "index", "build", "--model", str(tmp_path / "model"), "--images", str(tmp_path / "photos"),
                 "--out", str(out)]) == 0
    assert len(Retriever.load(out)) == 2
    assert main(["index", "build", "--model", str(tmp_path / "no-model"), "--images", str(tmp_path / "photos"),
                 "--out", str(out)]) == 2
