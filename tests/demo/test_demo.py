"""The demo end to end with very small settings, and the HTML report on its own."""

import base64
import json
import re

import pytest
from PIL import Image

from gemcaption.demo import run as demo
from gemcaption.demo.report import MetricRow, Neighbour, QueryResult, render_report, thumbnail_data_uri, write_report


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    result = demo.run_demo(
        out=root / "report", epochs=2, n_images=48, quiet=True, image_size=64, data_root=root / "data"
    )
    return root, result


def test_demo_writes_a_self_contained_report_with_every_section(demo_run):
    root, result = demo_run
    report = root / "report" / "index.html"
    assert result["report"] == report and report.is_file()
    html = report.read_text(encoding="utf-8")
    for section in ('id="setup"', 'id="metrics"', 'id="loss-curve"', 'id="image-search"', 'id="text-search"'):
        assert section in html
    assert "generated:" in html and "true captions:" in html
    # self-contained: images are embedded, nothing refers to a file or the network
    assert html.count("data:image/jpeg;base64,") >= 7 * 5  # 7 test images, each with 5 neighbours
    assert "data:image/png;base64," in html  # the loss curve
    assert not re.search(r'src="(?!data:)', html)
    for name in demo.TEXT_QUERIES[:2]:
        assert name in html


def test_demo_reports_figures_with_their_chance_levels(demo_run):
    root, result = demo_run
    figures = json.loads((root / "report" / "metrics.json").read_text())
    captioning = figures["metrics"]["captioning"]
    assert 0.0 <= captioning["bleu1"] <= 1.0 and captioning["n_images"] == 7
    exact = figures["metrics"]["text_search_exact_image"]
    assert exact["n_queries"] == 7 and exact["chance_r1"] == pytest.approx(1 / 7)
    assert exact["gallery_size"] == 7
    image_search = figures["metrics"]["image_search_same_gem"]
    assert image_search["n_queries"] == 2  # only the two sapphires share a label among the 7 test images
    assert len(figures["history"]["loss"]) == 2
    html = (root / "report" / "index.html").read_text(encoding="utf-8")
    assert "text search, exact image: R@1" in html and f"{exact['chance_r1']:.3f}" in html


def test_demo_keeps_a_model_and_an_index_that_can_be_searched(demo_run):
    from gemcaption.retrieval.retriever import Retriever

    root, result = demo_run
    retriever = Retriever.load(result["index"], progress=False)
    assert len(retriever) == 7
    assert retriever.embedder.kind == "caption_space"  # the demo's model has a learned space: the index uses it
    assert "learned caption space" in (root / "report" / "index.html").read_text(encoding="utf-8")
    hits = retriever.search_text("a blue sapphire ring", k=3)
    assert len(hits) == 3 and hits[0].score >= hits[-1].score
    assert (root / "report" / "model" / "manifest.json").is_file()


def test_demo_prints_the_report_path_and_figures(tmp_path, capsys, monkeypatch):
    rows = [MetricRow("text search, exact image: R@1", 0.5, 0.125), MetricRow("caption BLEU-4", 0.25)]
    demo._print_summary(
        {
            "report": tmp_path / "r" / "index.html",
            "seconds": 61.0,
            "pretrained": True,
            "rows": rows,
            "index": tmp_path / "r" / "search-index",
        },
        quiet=False,
    )
    out = capsys.readouterr().out
    assert "1 min 01 s" in out and "0.500   (chance 0.125)" in out and "gemcaption serve --index" in out
    assert out.strip().endswith(str((tmp_path / "r" / "index.html").absolute()))
    demo._print_summary(
        {"report": tmp_path / "index.html", "seconds": 1.0, "pretrained": True, "rows": rows, "index": tmp_path},
        quiet=True,
    )
    assert capsys.readouterr().out.strip() == f"Report: {(tmp_path / 'index.html').absolute()}"


def test_demo_uses_the_offline_pretrained_encoder_and_falls_back_without_it(monkeypatch):
    from gemcaption.captioning import encoders
    from gemcaption.errors import WeightsError

    monkeypatch.setattr(encoders, "default_pretrained_encoder", lambda: ("efficientnetb0", "imagenet"))
    assert demo.choose_encoder() == ("efficientnetb0", "imagenet", True)

    def missing():
        raise WeightsError("nothing offline")

    monkeypatch.setattr(encoders, "default_pretrained_encoder", missing)
    assert demo.choose_encoder() == ("efficientnet_lite0", None, False)
    assert demo.choose_encoder("efficientnet_lite0", "none") == ("efficientnet_lite0", "none", False)


def test_demo_refuses_settings_too_small_to_split(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        demo.run_demo(out=tmp_path, n_images=5, quiet=True)


def test_report_escapes_text_and_embeds_thumbnails(tmp_path):
    image = tmp_path / "ring.png"
    Image.new("RGB", (300, 200), (200, 20, 30)).save(image)
    uri = thumbnail_data_uri(image, size=64)
    thumbnail = Image.open(__import__("io").BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert thumbnail.size == (64, 43)
    assert thumbnail_data_uri(tmp_path / "missing.png") == ""

    query = QueryResult(
        [Neighbour(str(image), "<b>ruby</b>", 0.9, True), Neighbour(None, "lost", 0.1, False)],
        image=str(image),
        generated="a <script>alert(1)</script> ring",
        references=("a ruby",),
    )
    html = render_report(
        "t<i>",
        {"k": "<v>"},
        [MetricRow("R@1 <x>", 0.5, 0.1)],
        {"loss": [2.0, 1.0], "val_loss": [2.5, 1.5], "best_epoch": 2},
        [query],
        [QueryResult([], text="x & y")],
    )
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;ruby" in html
    assert "t&lt;i&gt;" in html and "x &amp; y" in html and "no image" in html
    assert "0.500" in html and "0.100" in html and "&#10003;" in html and "&#10007;" in html
    path = write_report(tmp_path / "out" / "report.html", "t", {}, [], None)
    assert path.is_file() and 'id="loss-curve"' not in path.read_text()
