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
    assert main(["-q", "index", "remove", str(index), "0", "7"]) == 1  # 7 is unknown; 0 is still removed
    assert capsys.readouterr().err.splitlines()[0] == f"gemcaption: error: 7: no image with this id in {index}"
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


def test_evaluate_takes_the_generation_controls(tmp_path, capsys, monkeypatch):
    import gemcaption.captioning.captioner
    from gemcaption.captioning.samplers import BeamSampler

    loaded = []

    def load(path, **kwargs):
        loaded.append(FakeCaptioner.load(path))
        return loaded[-1]

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", load)
    FakeCaptioner().save(tmp_path / "model")
    spec = write_manifest(tmp_path)
    argv = ["-q", "evaluate", "--model", str(tmp_path / "model"), "--data", spec, "--json"]
    assert main([*argv, "--beam", "2", "--min-length", "3", "--max-length", "9", "--length-penalty", "0"]) == 0
    sampler = loaded[-1].last_options["sampler"]
    assert isinstance(sampler, BeamSampler) and (sampler.width, sampler.min_length, sampler.max_length) == (2, 3, 9)
    assert json.loads(capsys.readouterr().out)["beam_width"] == 2
    assert main([*argv, "--min-length", "0"]) == 2 and len(loaded) == 1  # refused before the model loads


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


# --- index sync, remove by path, build's checks (issue 15) -----------------------------------------


class CountingCaptioner(FakeCaptioner):
    """A fake captioner that counts the images it captions and, as the real one does, warns about
    each unreadable image (the commands report those themselves, once)."""

    images = 0

    def caption(self, images, beam_width=1, **kwargs):
        import warnings

        from gemcaption.data.images import SkippedImageWarning

        CountingCaptioner.images += len(images)
        captions = super().caption(images, beam_width, **kwargs)
        for image, text in zip(images, captions):
            if text is None:
                warnings.warn(f"skipping image: {image}: not an image file", SkippedImageWarning, stacklevel=2)
        return captions


@pytest.fixture
def model(tmp_path, monkeypatch):
    """A fake model directory; ``loads`` counts how often a captioner was loaded from it."""
    import gemcaption.captioning.captioner

    loads = []

    def load(directory):
        loads.append(directory)
        return CountingCaptioner.load(directory)

    monkeypatch.setattr(gemcaption.captioning.captioner.Captioner, "load", load)
    monkeypatch.setattr(CountingCaptioner, "images", 0)
    FakeCaptioner().save(tmp_path / "model")
    return tmp_path / "model", loads


def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    return folder, [
        make_image(folder / "ruby.png", (230, 40, 30), 1),
        make_image(folder / "emerald.png", (20, 200, 40), 2),
        make_image(folder / "sub" / "sapphire.png", (20, 30, 220), 3),
    ]


def build_args(model_dir, out, *rest):
    return ["-q", "index", "build", "--model", str(model_dir), "--out", str(out), *map(str, rest)]


def test_index_sync_adds_changes_and_removes(tmp_path, model, capsys):
    import os

    folder, (ruby, emerald, sapphire) = photos(tmp_path)
    idx = tmp_path / "idx"
    assert main(build_args(model[0], idx, "--images", folder)) == 0
    capsys.readouterr()
    new = make_image(folder / "sub" / "garnet.png", (90, 10, 10), 4)
    make_image(emerald, (20, 30, 220), 5)  # same name, new content
    os.utime(emerald, ns=(1_800_000_000 * 10**9,) * 2)
    os.remove(ruby)
    CountingCaptioner.images = 0
    assert main(["index", "sync", str(idx), str(folder)]) == 0
    out, err = capsys.readouterr()
    assert out == "added 1, changed 1, removed 1, moved 0, unchanged 1, duplicates 0, failed 0\n"
    assert "captioned 2 images; the index holds 3" in err and CountingCaptioner.images == 2
    images = {r.image: r.caption for r in Retriever.load(idx).metadata.records.values()}
    assert images == {new: "a dark red stone", emerald: "a bright blue stone", sapphire: "a bright blue stone"}


def test_index_sync_without_changes_loads_no_model(tmp_path, model, capsys):
    folder, _ = photos(tmp_path)
    idx = tmp_path / "idx"
    assert main(build_args(model[0], idx, "--images", folder)) == 0
    model[1].clear()
    capsys.readouterr()
    assert main(["-q", "index", "sync", str(idx), str(folder)]) == 0
    out, err = capsys.readouterr()
    assert out == "added 0, changed 0, removed 0, moved 0, unchanged 3, duplicates 0, failed 0\n" and err == ""
    assert model[1] == []  # nothing to caption: the captioner was never even loaded


def skipped_warnings(recwarn) -> list[str]:
    """Image warnings that escaped a command (it reports bad images as error lines instead)."""
    from gemcaption.data.images import SkippedImageWarning

    return [
        str(w.message) for w in recwarn if issubclass(w.category, SkippedImageWarning) or "skipping" in str(w.message)
    ]


def test_index_sync_reports_each_bad_file_and_syncs_the_rest(tmp_path, model, capsys, recwarn):
    folder, _ = photos(tmp_path)
    idx = tmp_path / "idx"
    assert main(build_args(model[0], idx, "--images", folder)) == 0
    (folder / "broken.png").write_bytes(b"not an image")
    make_image(folder / "garnet.png", (90, 10, 10), 4)
    capsys.readouterr()
    assert main(["-q", "index", "sync", str(idx), str(folder)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("added 1,") and out.rstrip().endswith("failed 1")
    lines = err.splitlines()
    assert lines[0].startswith(f"gemcaption: error: {folder / 'broken.png'}: not a readable image")
    assert lines[1:] == ["gemcaption: 1 of 5 inputs failed"] and len(Retriever.load(idx)) == 4
    assert skipped_warnings(recwarn) == []


def test_index_sync_needs_an_index_and_a_folder(tmp_path, model, capsys):
    folder, _ = photos(tmp_path)
    assert main(["index", "sync", str(tmp_path / "nope"), str(folder)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no such index" in err[0] and "index build" in err[0]
    assert main(["index", "sync", str(tmp_path / "nope"), str(tmp_path / "no-folder")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_index_remove_by_path_and_id_names_the_unknown_ones(tmp_path, model, capsys):
    folder, (ruby, emerald, sapphire) = photos(tmp_path)
    idx = tmp_path / "idx"
    assert main(build_args(model[0], idx, "--images", folder)) == 0
    ids = {r.image: r.id for r in Retriever.load(idx).metadata.records.values()}
    capsys.readouterr()
    args = ["-q", "index", "remove", str(idx), ruby, str(ids[emerald]), "99", str(tmp_path / "nope.png")]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{ids[ruby]}\t{ruby}", f"{ids[emerald]}\t{emerald}"]
    assert err.splitlines() == [
        f"gemcaption: error: 99: no image with this id in {idx}",
        f"gemcaption: error: {tmp_path / 'nope.png'}: no image indexed at this path in {idx}",
        "gemcaption: 2 of 4 inputs failed",
    ]
    assert [r.image for r in Retriever.load(idx).metadata.records.values()] == [sapphire]
    assert main(["-q", "index", "remove", str(idx), str(folder / "sub")]) == 0  # a folder: all below it
    assert len(Retriever.load(idx)) == 0


def test_index_build_refuses_an_existing_out_unless_forced(tmp_path, model, capsys):
    folder, _ = photos(tmp_path)
    idx = tmp_path / "idx"
    assert main(build_args(model[0], idx, "--images", folder)) == 0
    capsys.readouterr()
    CountingCaptioner.images = 0
    assert main(build_args(model[0], idx, "--images", folder / "sub")) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "exists; pass --force" in err[0] and CountingCaptioner.images == 0
    assert len(Retriever.load(idx)) == 3
    assert main(build_args(model[0], idx, "--images", folder / "sub", "--force")) == 0
    assert len(Retriever.load(idx)) == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(build_args(model[0], other, "--images", folder, "--force")) == 2
    assert "not a gemcaption index" in capsys.readouterr().err and (other / "keep.txt").exists()


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--factory", "BOGUS"], "--factory 'BOGUS'"),
        (["--factory", "IVF64,Flat"], "cannot be trained on 3 images"),
        (["--hybrid", "1"], "--hybrid must be below 1"),
        (["--beam", "0"], "--beam"),
        (["--dim", "0"], "--dim"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_index_build_checks_options_before_captioning(tmp_path, model, capsys, bad, message):
    folder, _ = photos(tmp_path)
    assert main(build_args(model[0], tmp_path / "idx", "--images", folder, *bad)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0], err
    assert model[1] == [] and CountingCaptioner.images == 0 and not (tmp_path / "idx").exists()


def test_index_build_takes_files_and_folders_and_reports_each_bad_one(tmp_path, model, capsys, recwarn):
    folder, (ruby, emerald, sapphire) = photos(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"junk")
    args = build_args(model[0], tmp_path / "idx", "--images", folder / "sub", ruby, broken, tmp_path / "nope.png")
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'idx'}\n"
    lines = err.splitlines()
    assert lines[0] == f"gemcaption: error: {tmp_path / 'nope.png'}: no such file or directory"
    assert lines[1].startswith(f"gemcaption: error: {broken}: not a readable image")
    assert lines[2:] == ["gemcaption: 2 of 4 inputs failed"] and skipped_warnings(recwarn) == []
    assert sorted(r.image for r in Retriever.load(tmp_path / "idx").metadata.records.values()) == [ruby, sapphire]


def test_index_build_limit_is_a_seeded_sample(tmp_path, model):
    folder, paths = photos(tmp_path)
    chosen = []
    for run, seed in enumerate(["1", "1", "2"]):
        out = tmp_path / f"idx{run}"
        assert main(build_args(model[0], out, "--images", folder, "--limit", "2", "--seed", seed)) == 0
        chosen.append(sorted(r.image for r in Retriever.load(out).metadata.records.values()))
    assert len(chosen[0]) == 2 and chosen[0] == chosen[1] and set(chosen[0]) <= set(paths)


def test_index_add_takes_folders_and_reports_bad_images(tmp_path, model, capsys, recwarn):
    folder, (ruby, emerald, sapphire) = photos(tmp_path)
    idx = tmp_path / "idx"
    assert main(build_args(model[0], idx, "--images", ruby)) == 0
    (folder / "sub" / "broken.png").write_bytes(b"junk")
    capsys.readouterr()
    assert main(["-q", "index", "add", str(idx), str(folder / "sub"), ruby]) == 1
    out, err = capsys.readouterr()
    assert [line.split("\t")[1] for line in out.splitlines()] == [sapphire, ruby]
    assert err.splitlines()[0].startswith(f"gemcaption: error: {folder / 'sub' / 'broken.png'}: not a readable")
    assert err.splitlines()[1:] == ["gemcaption: 1 of 3 inputs failed"] and len(Retriever.load(idx)) == 2
    assert skipped_warnings(recwarn) == []


def test_index_build_from_data_reports_unreadable_images(tmp_path, model, capsys, recwarn):
    spec = write_manifest(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"junk")
    with open(tmp_path / "data.csv", "a") as manifest:
        manifest.write("broken.png,a broken stone,Ruby,test\n")
    args = build_args(model[0], tmp_path / "idx", "--data", spec, "--split", "test", "--dim", "8")
    assert main(args) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"gemcaption: error: {tmp_path / 'broken.png'}: not a readable image")
    assert lines[1:] == ["gemcaption: 1 of 5 inputs failed"] and skipped_warnings(recwarn) == []
    assert len(Retriever.load(tmp_path / "idx")) == 4  # the others are indexed


def test_index_sync_queues_behind_another_writer_and_keeps_its_images(tmp_path, model, capsys):
    import threading
    import time

    folder, _ = photos(tmp_path)
    idx = tmp_path / "idx"
    assert main(build_args(model[0], idx, "--images", folder)) == 0
    elsewhere = make_image(tmp_path / "elsewhere.png", (200, 200, 30), 8)
    new = make_image(folder / "garnet.png", (90, 10, 10), 4)
    holding, done = threading.Event(), threading.Event()

    def writer():
        with Retriever.edit(idx, FakeCaptioner(), progress=False) as retriever:
            retriever.add([elsewhere])
            holding.set()
            done.wait(10)
            time.sleep(0.3)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        capsys.readouterr()
        assert main(["-q", "index", "sync", str(idx), str(folder), "--wait", "0"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "is being written by" in err[0]
        done.set()
        assert main(["-q", "index", "sync", str(idx), str(folder), "--wait", "10"]) == 0  # waits for the writer
    finally:
        done.set()
        thread.join()
    assert capsys.readouterr().out.startswith("added 1, changed 0, removed 0")
    assert {r.image for r in Retriever.load(idx).metadata.records.values()} >= {elsewhere, new}
    assert len(Retriever.load(idx)) == 5
