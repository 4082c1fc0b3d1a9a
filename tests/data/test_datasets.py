import csv
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from gemcaption.data.loaders import (Dataset, DatasetWarning, Sample, load_csv, load_dataset, load_flickr8k,
                                 load_folder, split_dataset)
from gemcaption.errors import DatasetError
from gemcaption.data.gemstones import GEMSTONE_CLASSES, canonical_label, describe_gemstone


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
        "y,b.png,test,pendant\nz,c.png,,ring\n")
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
    assert load_csv(tmp_path / "sub" / "m.csv")[0].image == str(image)


# --- Dataset and splitting -----------------------------------------------------------------------

def labelled_dataset(per_label=(10, 20, 5)):
    samples = [Sample(f"/img/{label}_{k}.jpg", (f"cap {k}",), label)
               for label, count in zip("abc", per_label) for k in range(count)]
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
    assert canonical_label("sapphire_blue") == "Sapphire Blue"
    assert canonical_label("Hematite") is None
    assert describe_gemstone("Black_Star  Diopside") == "a black star diopside gemstone"
