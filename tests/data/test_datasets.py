import csv
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from gemcaption.data.gemstones import GEMSTONE_CLASSES, describe_gemstone
from gemcaption.data.images import IMAGE_EXTENSIONS, has_image_extension
from gemcaption.data.loaders import (
    DATASET_FORMATS,
    Dataset,
    DatasetWarning,
    Sample,
    dataset_spec_forms,
    load_csv,
    load_dataset,
    load_flickr8k,
    load_folder,
    split_dataset,
)
from gemcaption.data.splits import find_duplicates, stratified_split
from gemcaption.errors import DatasetError, UnknownNameError
from gemcaption.registry import Registry


def make_image(path: Path, colour=(120, 30, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def flickr_names(count):
    return [f"{1000 + i}_abc.jpg" for i in range(count)]


def write_token_file(folder: Path, names, per_image=5, extra_lines=()):
    lines = [f"{name}#{k}\tcaption {k} of {name}" for name in names for k in range(per_image)]
    (folder / "Flickr8k.token.txt").write_text("\n".join(list(lines) + list(extra_lines)) + "\n")


def write_kaggle_csv(folder: Path, names, per_image=5):
    with open(folder / "captions.txt", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        for name in names:
            for k in range(per_image):
                writer.writerow([name, f"a dog , running {k} in {name}"])


# --- Flickr8k ------------------------------------------------------------------------------------


def test_token_file_with_missing_image_key_and_split_lists(tmp_path):
    names = flickr_names(10)
    for name in names:
        make_image(tmp_path / "Flicker8k_Dataset" / name)
    text = tmp_path / "Flickr8k_text"
    text.mkdir()
    write_token_file(text, names, extra_lines=["2258277193_586949ec62.jpg.1#0\ta caption without an image"])
    (text / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:6]) + "\n")
    (text / "Flickr_8k.devImages.txt").write_text("\n".join(names[6:8]) + "\n")
    (text / "Flickr_8k.testImages.txt").write_text("\n".join(names[8:]) + "\n")
    with pytest.warns(DatasetWarning, match="2258277193_586949ec62.jpg.1"):
        dataset = load_dataset(f"flickr8k:{tmp_path}")
    assert len(dataset) == 10 and dataset.skipped == 1
    assert all(len(s.captions) == 5 for s in dataset)
    assert Counter(s.split for s in dataset) == {"train": 6, "dev": 2, "test": 2}
    assert dataset.splits == ["train", "dev", "test"]
    assert Path(dataset[0].image).parent.name == "Flicker8k_Dataset"
    assert dataset[0].captions[1] == f"caption 1 of {names[0]}"
    with pytest.warns(DatasetWarning):
        assert len(load_dataset(f"flickr8k:{tmp_path}", split="dev")) == 2
    with pytest.warns(DatasetWarning):
        assert len(load_dataset(f"flickr8k:{tmp_path}", split="all")) == 10


def test_kaggle_csv_with_images_folder_and_commas(tmp_path):
    names = flickr_names(8)
    for name in names:
        make_image(tmp_path / "Images" / name)
    write_kaggle_csv(tmp_path, names)
    (tmp_path / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:6]))
    (tmp_path / "Flickr_8k.devImages.txt").write_text("\n".join(names[6:]))
    dataset = load_flickr8k(tmp_path / "captions.txt")
    assert len(dataset) == 8 and dataset.skipped == 0
    assert dataset[0].captions[0] == f"a dog , running 0 in {names[0]}"
    assert set(dataset.splits) == {"train", "dev"}


def test_kaggle_csv_unquoted_comma_kept(tmp_path):
    make_image(tmp_path / "Images" / "a.jpg")
    (tmp_path / "captions.txt").write_text("image,caption\na.jpg,a dog , on grass\n")
    dataset = load_flickr8k(tmp_path)
    assert dataset[0].captions == ("a dog , on grass",)


def test_images_next_to_caption_file(tmp_path):
    names = flickr_names(3)
    for name in names:
        make_image(tmp_path / name)
    write_token_file(tmp_path, names, per_image=2)
    dataset = load_dataset(str(tmp_path))  # a bare folder path is detected as Flickr8k
    assert len(dataset) == 3 and dataset.caption_count == 6


def test_seeded_split_by_image_keeps_captions_together(tmp_path):
    names = flickr_names(40)
    for name in names:
        make_image(tmp_path / "Images" / name)
    write_kaggle_csv(tmp_path, names)
    first = load_dataset(f"flickr8k:{tmp_path}", seed=3)
    again = load_dataset(f"flickr8k:{tmp_path}", seed=3)
    other = load_dataset(f"flickr8k:{tmp_path}", seed=4)
    assert [s.split for s in first] == [s.split for s in again]
    assert [s.split for s in first] != [s.split for s in other]
    assert Counter(s.split for s in first) == {"train": 30, "dev": 5, "test": 5}
    assert len({s.image for s in first}) == 40  # one sample per image: captions never split
    assert all(len(s.captions) == 5 for s in first)


def test_flickr_without_any_found_image_is_an_error(tmp_path):
    write_token_file(tmp_path, flickr_names(2))
    (tmp_path / "Images").mkdir()
    with pytest.raises(DatasetError):
        load_flickr8k(tmp_path)


def test_flickr_missing_caption_file(tmp_path):
    with pytest.raises(DatasetError, match="caption file"):
        load_flickr8k(tmp_path)


# --- class folders -------------------------------------------------------------------------------


def test_class_folders_without_split_level(tmp_path):
    for label in ("Ruby", "Tigers Eye", "Mystery Stone"):
        for k in range(3):
            make_image(tmp_path / label / f"{k}.jpg")
    (tmp_path / "Ruby" / "notes.txt").write_text("not an image")
    dataset = load_dataset(f"folder:{tmp_path}")
    assert len(dataset) == 9
    assert dataset.labels == ["Mystery Stone", "Ruby", "Tigers Eye"]
    assert dataset.splits == ["train"]
    ruby = next(s for s in dataset if s.label == "Ruby")
    assert ruby.captions == (describe_gemstone("Ruby"),) and "corundum" in ruby.captions[0]
    mystery = next(s for s in dataset if s.label == "Mystery Stone")
    assert mystery.captions == ("a mystery stone gemstone",)


def test_class_folders_with_split_level(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for label in ("Emerald", "Opal"):
            for k in range(count):
                make_image(tmp_path / split / label / f"{label}_{k}.png")
    dataset = load_folder(tmp_path)
    assert Counter(s.split for s in dataset) == {"train": 8, "test": 4}
    assert dataset.split("test").labels == ["Emerald", "Opal"]
    assert len(load_dataset(f"folder:{tmp_path}", split="test")) == 4


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "Ruby").mkdir()
    with pytest.raises(DatasetError):
        load_folder(tmp_path)


# --- CSV manifest --------------------------------------------------------------------------------


def test_csv_manifest_spanish_bad_rows_and_images_subfolder(tmp_path):
    make_image(tmp_path / "images" / "anillo.jpg")
    make_image(tmp_path / "images" / "colgante.jpg")
    make_image(tmp_path / "pendientes.jpg")
    rows = [
        "image,caption,granularity",
        "anillo.jpg,Anillo,category",
        "anillo.jpg,Anillo de plata con circonitas,material",
        "colgante.jpg,Colgante corazón dorado,product",
        "pendientes.jpg,Pendientes de plata,material",
        "perdido.jpg,Imagen que no existe,product",
        "colgante.jpg,,category",
        "pendientes.jpg",
        "",
    ]
    path = tmp_path / "captions.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(DatasetWarning) as caught:
        dataset = load_dataset(f"csv:{path}")
    message = str(caught[0].message)
    assert "skipped 3" in message and "perdido.jpg" in message
    assert dataset.skipped == 3
    assert len(dataset) == 3
    by_name = {Path(s.image).name: s for s in dataset}
    assert by_name["anillo.jpg"].captions == ("Anillo", "Anillo de plata con circonitas")
    assert by_name["colgante.jpg"].captions == ("Colgante corazón dorado",)  # accent kept
    assert all(s.split == "train" and s.label is None for s in dataset)


def test_csv_manifest_with_label_and_split(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        make_image(tmp_path / name)
    (tmp_path / "m.csv").write_text(
        "caption,image,split,label\nx one,a.png,train,ring\nx two,a.png,train,ring\n"
        "y,b.png,test,pendant\nz,c.png,,ring\n"
    )
    dataset = load_csv(tmp_path / "m.csv")
    assert [s.split for s in dataset] == ["train", "test", "train"]
    assert dataset.labels == ["pendant", "ring"]
    assert dataset[0].captions == ("x one", "x two")


def test_csv_without_required_columns(tmp_path):
    (tmp_path / "m.csv").write_text("file,text\na.png,hello\n")
    with pytest.raises(DatasetError, match="caption"):
        load_csv(tmp_path / "m.csv")


def test_csv_absolute_paths(tmp_path):
    image = make_image(tmp_path / "elsewhere" / "x.jpg")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text(f"image,caption\n{image},una pulsera\n")
    assert load_csv(tmp_path / "sub" / "m.csv", allow_outside=True)[0].image == str(image)
    with pytest.raises(DatasetError, match="allow-outside"):  # outside the manifest's folder: refused by default
        load_csv(tmp_path / "sub" / "m.csv")


# --- Dataset and splitting -----------------------------------------------------------------------


def labelled_dataset(per_label=(10, 20, 5)):
    samples = [
        Sample(f"/img/{label}_{k}.jpg", (f"cap {k}",), label)
        for label, count in zip("abc", per_label)
        for k in range(count)
    ]
    return Dataset(samples, "toy")


def test_dataset_accessors():
    dataset = labelled_dataset()
    assert len(dataset) == 35 and dataset.labels == ["a", "b", "c"]
    assert dataset.images[0] == "/img/a_0.jpg" and dataset.captions[0] == ("cap 0",)
    assert isinstance(dataset[1:3], Dataset) and len(dataset[1:3]) == 2
    assert dataset.split("all") is dataset
    with pytest.raises(DatasetError, match="no split 'val'"):
        dataset.split("val")


def test_split_dataset_stratified_and_seeded():
    dataset = labelled_dataset()
    parts = split_dataset(dataset, (0.8, 0.2), seed=1)
    assert parts.splits == ["train", "val"]
    val = parts.split("val")
    assert Counter(s.label for s in val) == {"a": 2, "b": 4, "c": 1}
    assert [s.split for s in split_dataset(dataset, (0.8, 0.2), seed=1)] == [s.split for s in parts]
    assert [s.split for s in split_dataset(dataset, (0.8, 0.2), seed=2)] != [s.split for s in parts]
    assert len(dataset.splits) == 1  # the original is untouched


def test_split_dataset_named_fractions_unstratified():
    samples = [Sample(f"/img/{k}.jpg", ("c",)) for k in range(20)]
    parts = split_dataset(Dataset(samples), {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    assert Counter(s.split for s in parts) == {"train": 10, "val": 5, "test": 5}
    with pytest.raises(ValueError):
        split_dataset(Dataset(samples), (0.5, 0.5), names=["only_one"])


def test_unknown_spec():
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("nonsense-that-does-not-exist")


# --- the dataset format registry ------------------------------------------------------------------


def test_formats_come_from_one_registry():
    assert DATASET_FORMATS.names() == ["flickr8k", "folder", "csv", "demo"]
    assert DATASET_FORMATS.kind == "dataset format"
    assert dataset_spec_forms() == "flickr8k:PATH, folder:PATH, csv:PATH or demo"


def test_unknown_format_prefix_lists_the_formats():
    with pytest.raises(UnknownNameError) as caught:
        load_dataset("coco:/data/coco")
    assert str(caught.value) == "unknown dataset format 'coco'; choose one of: flickr8k, folder, csv, demo"
    assert isinstance(caught.value, ValueError)


def test_format_prefix_is_case_insensitive_and_a_bare_path_is_still_guessed(tmp_path):
    make_image(tmp_path / "shop" / "a.png")
    (tmp_path / "shop" / "list.csv").write_text("image,caption\na.png,un anillo\n")
    for spec in (
        f"CSV:{tmp_path / 'shop' / 'list.csv'}",
        f"csv:{tmp_path / 'shop' / 'list.csv'}",
        str(tmp_path / "shop" / "list.csv"),
    ):
        assert load_dataset(spec)[0].captions == ("un anillo",), spec
    make_image(tmp_path / "gems" / "Ruby" / "1.jpg")
    assert load_dataset(str(tmp_path / "gems"))[0].label == "Ruby"  # a folder without captions: classes


def test_a_format_without_its_path_is_a_clear_error():
    with pytest.raises(DatasetError, match="folder:PATH needs a path"):
        load_dataset("folder:")
    with pytest.raises(DatasetError, match="demo:N expects a number of images"):
        load_dataset("demo:many")


def test_a_registered_format_is_used_by_load_dataset(monkeypatch):
    from gemcaption.data import loaders

    calls = []

    def open_toy(argument, split, seed):
        calls.append((argument, split, seed))
        return labelled_dataset()

    monkeypatch.setattr(loaders, "DATASET_FORMATS", Registry("dataset format"))
    loaders.DATASET_FORMATS.register("toy", open_toy)
    assert len(load_dataset("toy:a:b", split="all", seed=4)) == 35
    assert calls == [("a:b", "all", 4)]


def test_image_extensions_are_defined_once():
    from gemcaption.data import loaders
    from gemcaption.retrieval import queries

    assert loaders.IMAGE_EXTENSIONS is IMAGE_EXTENSIONS and queries.IMAGE_EXTENSIONS is IMAGE_EXTENSIONS
    assert has_image_extension("a/B.JPEG") and has_image_extension("x.webp") and not has_image_extension("x.txt")


# --- stratified held-out rows and duplicates ---------------------------------------------------------


def test_stratified_split_is_pinned():
    """The classifiers and the gemstone benchmark hold out these exact rows: the output must not change."""
    labels = ["ruby"] * 7 + ["opal"] * 3 + ["jade"] + ["onyx"] * 2 + ["ruby"] * 3
    kept, held = stratified_split(labels, 0.25, seed=5)
    assert held == [7, 12, 14, 15]
    assert kept == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 13]
    assert stratified_split(labels, 0.25, seed=5) == (kept, held)
    assert stratified_split(labels, 0.25, seed=6)[1] != held


def test_stratified_split_holds_out_from_every_class_but_keeps_single_images():
    labels = ["a"] * 10 + ["b"] * 2 + ["c"]
    kept, held = stratified_split(labels, 0.2, seed=0)
    assert Counter(labels[i] for i in held) == {"a": 2, "b": 1}
    assert 12 in kept and sorted(kept + held) == list(range(13))
    assert stratified_split(labels, 0.0, seed=0)[1] != []  # at least one of each class of two or more


def test_find_duplicates_keeps_the_first_of_each_group(tmp_path):
    a = make_image(tmp_path / "a.png", (10, 20, 30))
    b = make_image(tmp_path / "b.png", (200, 20, 30))
    copy = tmp_path / "a_copy.png"
    copy.write_bytes(a.read_bytes())
    keep, groups = find_duplicates([str(a), str(b), str(copy), str(copy)])
    assert keep == [0, 1] and groups == [[0, 2, 3]]


# --- gemstone table ------------------------------------------------------------------------------


def test_gemstone_table_has_87_distinct_classes():
    assert len(GEMSTONE_CLASSES) == 87 == len({c.lower() for c in GEMSTONE_CLASSES})
    for name in ("Alexandrite", "Andalusite", "Cats Eye", "Quartz Rose", "Rhodolite", "Zoisite", "Pearl"):
        assert name in GEMSTONE_CLASSES
    descriptions = [describe_gemstone(c) for c in GEMSTONE_CLASSES]
    assert len(set(descriptions)) == 87 and all(len(d) > 20 for d in descriptions)


def test_gemstone_label_matching_is_tolerant():
    expected = describe_gemstone("Lapis Lazuli")
    assert describe_gemstone("lapis_lazuli") == describe_gemstone("  LAPIS   lazuli ") == expected
    assert describe_gemstone("Tiger's Eye") == describe_gemstone("tigers-eye")
    assert "Sapphire Blue" in GEMSTONE_CLASSES
    assert describe_gemstone("sapphire_blue") == describe_gemstone("Sapphire Blue") != "a sapphire blue gemstone"
    assert describe_gemstone("Hematite") == "a hematite gemstone"  # not in the table: the generic caption
    assert describe_gemstone("Black_Star  Diopside") == "a black star diopside gemstone"
