"""Bad manifests are refused with one DatasetError naming the file and row; image paths stay inside
the data set's folder unless ``allow_outside=True`` (``--allow-outside``)."""

import os
from pathlib import Path

import pytest
from fakes import FakeCaptioner, make_image

from gemcaption.cli import main
from gemcaption.data.loaders import MAX_FIELD, load_csv, load_dataset, load_flickr8k, load_folder
from gemcaption.errors import DatasetError


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    make_image(path, (200, 40, 40), seed=1, size=8)
    return path


@pytest.fixture
def shop(tmp_path):
    """A folder with two images and nothing else; tests write the manifest."""
    root = tmp_path / "shop"
    image(root / "a.png")
    image(root / "images" / "b.png")
    return root


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- encodings, NUL bytes, long fields, malformed rows ---------------------------------------------


def test_latin1_csv_is_refused_naming_the_row(shop):
    manifest = write(shop / "m.csv", "image,caption\na.png,un anillo\nb.png,Colgante corazón\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"m\.csv, row 3: not UTF-8"):
        load_csv(manifest)


def test_latin1_flickr_captions_file_is_refused(shop):
    write(shop / "captions.txt", "image,caption\na.png,un niño corre\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"captions\.txt, row 2: not UTF-8"):
        load_flickr8k(shop)


def test_utf8_with_bom_keeps_accents(shop):
    write(shop / "m.csv", "image,caption\na.png,Pendientes de plata Béatrice\n".encode("utf-8-sig"))
    assert load_dataset(f"csv:{shop / 'm.csv'}")[0].captions == ("Pendientes de plata Béatrice",)


def test_nul_byte_is_refused(shop):
    write(shop / "m.csv", b"image,caption\na.png,ok\nb.png,bad\x00caption\n")
    with pytest.raises(DatasetError, match=r"row 3: NUL byte"):
        load_csv(shop / "m.csv")


def test_a_caption_over_the_field_limit_refuses_the_file(shop):
    write(shop / "m.csv", b"image,caption\na.png,ok\nb.png," + b"x" * (MAX_FIELD + 1) + b"\n")
    with pytest.raises(DatasetError, match=r"m\.csv, row 3: a field over 131,072 characters"):
        load_csv(shop / "m.csv")
    write(shop / "m.csv", b"image,caption\na.png,ok\nb.png," + b"x" * MAX_FIELD + b"\n")  # at the limit: accepted
    assert len(load_csv(shop / "m.csv")) == 2


def test_an_over_long_token_line_is_refused(shop):
    write(shop / "Flickr8k.token.txt", b"a.png#0\tok\na.png#1\t" + b"y" * (MAX_FIELD + 1) + b"\n")
    with pytest.raises(DatasetError, match=r"token\.txt, row 2: a line of"):
        load_flickr8k(shop)


@pytest.mark.parametrize(
    "row", [b'a.png,"an unterminated quote\n', b'a.png,"quoted"trailing\n'], ids=["unterminated", "stray-quote"]
)
def test_a_malformed_csv_row_refuses_the_file(shop, row):
    write(shop / "m.csv", b"image,caption\nb.png,fine\n" + row)
    with pytest.raises(DatasetError, match=r"m\.csv, row 3: malformed CSV row"):
        load_csv(shop / "m.csv")


def test_cli_train_gives_one_error_line_and_exit_2(shop, tmp_path, capsys):
    write(shop / "m.csv", "image,caption\na.png,anillo dorado pequeño\n".encode("latin-1"))
    assert main(["train", "--data", f"csv:{shop / 'm.csv'}", "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gemcaption: error:") and "row 2: not UTF-8" in err
    assert not (tmp_path / "model").exists()


# --- image paths outside the manifest's folder ------------------------------------------------------


@pytest.mark.parametrize("value", ["/etc/passwd", "../outside.png", "images/../../outside.png"])
def test_paths_leading_out_are_refused_naming_allow_outside(shop, value):
    image(shop.parent / "outside.png")
    write(shop / "m.csv", f"image,caption\na.png,fine\n{value},escape\n".encode())
    with pytest.raises(DatasetError, match=r"m\.csv, row 3: image .* outside .*--allow-outside"):
        load_csv(shop / "m.csv")


def test_a_missing_file_outside_is_refused_too(shop):
    write(shop / "m.csv", b"image,caption\n../../nowhere/x.png,escape\n")
    with pytest.raises(DatasetError, match="outside"):
        load_csv(shop / "m.csv")


def test_absolute_path_inside_the_folder_is_accepted(shop):
    write(shop / "m.csv", f"image,caption\n{shop / 'a.png'},inside\n".encode())
    assert load_csv(shop / "m.csv")[0].image == str(shop / "a.png")


def test_symlink_leading_out_is_refused_unless_allowed(shop):
    target = image(shop.parent / "secret.png")
    os.symlink(target, shop / "link.png")
    write(shop / "m.csv", b"image,caption\na.png,fine\nlink.png,through a link\n")
    with pytest.raises(DatasetError, match=r"row 3: image 'link.png' is outside"):
        load_dataset(f"csv:{shop / 'm.csv'}")
    assert len(load_dataset(f"csv:{shop / 'm.csv'}", allow_outside=True)) == 2


def test_allow_outside_accepts_outside_images_but_not_non_images(shop):
    image(shop.parent / "outside.png")
    write(shop / "m.csv", b"image,caption\n../outside.png,out there\n")
    dataset = load_dataset(str(shop / "m.csv"), allow_outside=True)
    assert Path(dataset[0].image).resolve() == (shop.parent / "outside.png").resolve()
    write(shop / "m.csv", b"image,caption\n/etc/passwd,not an image\n")
    with pytest.warns(UserWarning, match="not an image file"), pytest.raises(DatasetError, match="no usable rows"):
        load_csv(shop / "m.csv", allow_outside=True)


def test_flickr_image_names_leading_out_are_refused(shop):
    image(shop.parent / "outside.png")
    write(shop / "Flickr8k.token.txt", b"a.png#0\ta red thing\n../outside.png#0\tescape\n")
    with pytest.raises(DatasetError, match=r"token\.txt, row 2: image '\.\./outside\.png' is outside"):
        load_flickr8k(shop)
    assert len(load_flickr8k(shop, allow_outside=True)) == 2


def test_class_folder_symlinks_leading_out_are_refused(tmp_path):
    image(tmp_path / "gems" / "Ruby" / "1.png")
    image(tmp_path / "elsewhere" / "2.png")
    os.symlink(tmp_path / "elsewhere", tmp_path / "gems" / "Opal")
    with pytest.raises(DatasetError, match=r"Opal/2\.png' is outside"):
        load_folder(tmp_path / "gems")
    assert load_dataset(f"folder:{tmp_path / 'gems'}", allow_outside=True).labels == ["Opal", "Ruby"]


def test_cli_train_refuses_outside_paths_with_the_option_named(shop, tmp_path, capsys):
    write(shop / "m.csv", b"image,caption\n/etc/passwd,a password file\n")
    assert main(["train", "--data", f"csv:{shop / 'm.csv'}", "--out", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--allow-outside" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["index", "build", "--model", "m", "--out", "i", "--data", "csv:M"],
        ["evaluate", "--model", "m", "--data", "csv:M"],
        ["classify", "train", "--data", "csv:M", "--out", "c"],
    ],
    ids=["index-build", "evaluate", "classify-train"],
)
def test_other_commands_reading_manifests_refuse_outside_paths(shop, argv, capsys, monkeypatch):
    monkeypatch.setattr("gemcaption.cli.retrieval._load_captioner", lambda model: FakeCaptioner())
    write(shop / "m.csv", b"image,caption\n../../x.png,escape\n")
    code = main([f"csv:{shop / 'm.csv'}" if a == "csv:M" else a for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--allow-outside" in err, err
