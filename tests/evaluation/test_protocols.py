"""The evaluation protocols (gemcaption.evaluation.protocols) with a captioner that names colours."""

import numpy as np
import pytest
from fakes import FakeCaptioner, make_image

from gemcaption.data.types import Dataset, Sample
from gemcaption.errors import DatasetError
from gemcaption.evaluation.protocols import evaluate_split, format_report, retrieval_figures
from gemcaption.retrieval.embedders import build_embedder, embed_groups

COLOURS = {"red": (230, 20, 20), "green": (20, 200, 30), "blue": (20, 30, 230)}


def colour_dataset(tmp_path, broken: bool = False) -> Dataset:
    samples = []
    for split, count in (("train", 2), ("test", 2)):
        for colour, rgb in COLOURS.items():
            for k in range(count):
                path = make_image(tmp_path / f"{split}_{colour}_{k}.png", rgb, seed=k)
                samples.append(Sample(path, (f"a bright {colour} stone", f"a {colour} gem"), colour, split))
    if broken:
        (tmp_path / "broken.png").write_bytes(b"not an image")
        samples.append(Sample(str(tmp_path / "broken.png"), ("a stone",), "red", "test"))
    return Dataset(samples, "colours")


def test_evaluate_split_scores_captions_and_rankings(tmp_path):
    figures = evaluate_split(FakeCaptioner(), colour_dataset(tmp_path, broken=True), "test", progress=False)
    assert figures["images"] == 7 and figures["unreadable"] == 1 and figures["split"] == "test"
    assert figures["embedder"] == "tfidf_svd" and figures["embedder_fitted_on"] == "train references"
    assert figures["bleu1"] == pytest.approx(1.0) and figures["tfidf_cosine"] == pytest.approx(1.0)
    # two images per colour: the own image ties with its twin, and the lower index comes first
    assert figures["i2t_r1"] == pytest.approx(0.5) and figures["i2t_r5"] == 1.0
    assert figures["i2t_r1_chance"] == pytest.approx(1 / 6)
    assert figures["cat_map"] == 1.0 and figures["cat_queries"] == 6
    report = format_report(figures)
    assert "(chance 0.1667)" in report and "embedder_fitted_on" in report


def test_the_gallery_is_the_mean_of_each_image_references(tmp_path):
    generated = ["a red stone", "a blue stone"]
    references = [["a red stone", "a ruby"], ["a blue stone", "a sapphire"]]
    embedder = build_embedder(dim=8).fit([c for group in references for c in group])
    figures = retrieval_figures(generated, references, embedder=embedder)
    gallery = embed_groups(embedder, references)
    scores = embedder.transform(generated) @ gallery.T
    assert np.argmax(scores, axis=1).tolist() == [0, 1]
    assert figures["i2t_r1"] == 1.0 and figures["t2i_queries"] == 4


def test_a_split_that_does_not_exist_or_cannot_be_read(tmp_path):
    dataset = colour_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no split 'val'"):
        evaluate_split(FakeCaptioner(), dataset, "val", progress=False)
    unreadable = Dataset([Sample(str(tmp_path / "missing.png"), ("a stone",), None, "test")])
    with pytest.raises(DatasetError, match="could be read"):
        evaluate_split(FakeCaptioner(), unreadable, "test", progress=False)
