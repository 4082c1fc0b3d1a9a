import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gemcaption.data.images import SkippedImageWarning, content_hash, load_image, load_images
from gemcaption.errors import ImageError


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return str(path)


def rgb_image(width=40, height=20, colour=(200, 30, 10)):
    return Image.new("RGB", (width, height), colour)


@pytest.fixture
def good_png(tmp_path):
    return save(rgb_image(), tmp_path / "good.png")


# --- modes ---------------------------------------------------------------------------------------


def test_grayscale_becomes_rgb(tmp_path):
    path = save(Image.new("L", (8, 6), 77), tmp_path / "gray.png")
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (8, 6)
    assert image.getpixel((0, 0)) == (77, 77, 77)


def test_palette_becomes_rgb(tmp_path):
    palette_image = rgb_image(colour=(10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    image = load_image(save(palette_image, tmp_path / "p.png"))
    assert image.mode == "RGB"
    assert image.getpixel((3, 3)) == (10, 200, 30)


def test_palette_with_transparency_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 5, 10))
    palette_image = rgba.convert("P")
    palette_image.info["transparency"] = palette_image.getpixel((8, 8))
    path = save(palette_image, tmp_path / "pt.png", transparency=palette_image.getpixel((8, 8)))
    image = load_image(path)
    assert image.getpixel((8, 8)) == (255, 255, 255)
    assert image.getpixel((1, 1)) == (255, 0, 0)


def test_rgba_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.paste((0, 128, 0, 255), (0, 0, 5, 10))
    image = load_image(save(rgba, tmp_path / "a.png"))
    assert image.mode == "RGB"
    assert image.getpixel((8, 5)) == (255, 255, 255)  # fully transparent: white, not black
    assert image.getpixel((2, 5)) == (0, 128, 0)


def test_half_transparent_blends_with_white():
    image = load_image(Image.new("RGBA", (4, 4), (0, 0, 0, 128)))
    assert 120 <= image.getpixel((0, 0))[0] <= 135


def test_la_mode(tmp_path):
    image = load_image(save(Image.new("LA", (4, 4), (0, 0)), tmp_path / "la.png"))
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in CMYK
    image = load_image(save(cmyk, tmp_path / "cmyk.jpg", quality=95))
    red, green, blue = image.getpixel((8, 8))
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_16_bit_png_scaled_to_8_bit(tmp_path):
    values = np.full((6, 6), 65535, np.uint16)
    values[:, :3] = 32768
    sixteen = Image.fromarray(values)
    assert sixteen.mode.startswith("I")
    image = load_image(save(sixteen, tmp_path / "deep.png"))
    assert image.mode == "RGB"
    assert image.getpixel((5, 0)) == (255, 255, 255)
    assert 125 <= image.getpixel((0, 0))[0] <= 130  # not clipped to white


def test_one_bit_image(tmp_path):
    image = load_image(save(Image.new("1", (5, 5), 1), tmp_path / "bw.png"))
    assert image.getpixel((0, 0)) == (255, 255, 255)


# --- sources -------------------------------------------------------------------------------------


def test_numpy_uint8_float_and_gray_arrays():
    array = np.zeros((4, 6, 3), np.uint8)
    array[..., 2] = 255
    assert load_image(array).getpixel((0, 0)) == (0, 0, 255)
    assert load_image(np.ones((4, 6, 3), np.float32)).getpixel((0, 0)) == (255, 255, 255)
    gray = load_image(np.full((3, 5), 0.5))
    assert gray.size == (5, 3) and gray.getpixel((0, 0)) == (128, 128, 128)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)


def test_bad_arrays_raise():
    with pytest.raises(ImageError):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError):
        load_image(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(ImageError):
        load_image(np.full((2, 2), np.nan))


def test_bytes_and_pil_sources(good_png):
    data = Path(good_png).read_bytes()
    assert load_image(data).getpixel((0, 0)) == (200, 30, 10)
    original = rgb_image()
    loaded = load_image(original)
    assert loaded.getpixel((0, 0)) == (200, 30, 10)
    assert loaded is not original


def test_unsupported_source_type():
    with pytest.raises(ImageError):
        load_image(12345)


# --- EXIF ----------------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("RGB", (40, 20), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(wide, tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    image = load_image(path)
    assert image.size == (20, 40)
    red_top = image.getpixel((10, 2))
    assert red_top[0] > 200 and red_top[2] < 60  # the left strip is now on top


# --- bad files -----------------------------------------------------------------------------------


def test_missing_file_named(tmp_path):
    with pytest.raises(ImageError, match="nothere.jpg"):
        load_image(tmp_path / "nothere.jpg")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="notes.jpg"):
        load_image(path)


def test_corrupt_file(tmp_path, good_png):
    data = bytearray(Path(good_png).read_bytes())
    data[40:60] = b"\x00" * 20
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="corrupt.png"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    full = io.BytesIO()
    Image.fromarray(noise).save(full, format="JPEG")
    path = tmp_path / "truncated.jpg"
    path.write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated.jpg"):
        load_image(path)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError):
        load_image(tmp_path)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = save(Image.new("RGB", (100, 100)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="bomb"):
        load_image(path)
    with pytest.raises(ImageError, match="bomb"):
        load_image(Path(path).read_bytes())


def test_bomb_between_limit_and_twice_limit_also_refused(tmp_path, monkeypatch):
    # PIL only warns between 1x and 2x the limit; we refuse there too.
    path = save(Image.new("RGB", (40, 40)), tmp_path / "small_bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError):
        load_image(path)


# --- load_images ---------------------------------------------------------------------------------


def test_load_images_skips_bad_with_one_warning_each_and_summary(tmp_path, good_png):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("hello")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels, kept = load_images([good_png, str(empty), np.zeros((5, 5, 3), np.uint8), str(text)], 16)
    assert pixels.shape == (2, 16, 16, 3) and pixels.dtype == np.uint8
    assert kept == [0, 2]
    messages = [str(w.message) for w in caught if issubclass(w.category, SkippedImageWarning)]
    assert len(messages) == 3
    assert "empty.png" in messages[0] and "text.png" in messages[1]
    assert "2 of 4" in messages[2]


def test_load_images_resizes_without_crop():
    wide = np.zeros((10, 40, 3), np.uint8)
    wide[:, :20, 0] = 255  # left half red, right half black
    pixels, kept = load_images([wide], 8)
    assert kept == [0] and pixels.shape == (1, 8, 8, 3)
    assert pixels[0, 4, 1, 0] > 200 and pixels[0, 4, 6, 0] < 50  # both halves still present


def test_load_images_all_bad_gives_empty_array(tmp_path):
    with pytest.warns(SkippedImageWarning):
        pixels, kept = load_images([tmp_path / "missing.png"], 12)
    assert pixels.shape == (0, 12, 12, 3) and kept == []


def test_content_hash(tmp_path, good_png):
    copy = tmp_path / "copy.png"
    copy.write_bytes(Path(good_png).read_bytes())
    assert content_hash(good_png) == content_hash(copy) == content_hash(Path(good_png).read_bytes())
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert content_hash(a) == content_hash(a.copy()) != content_hash(b)
    assert content_hash(Image.fromarray(a)) != content_hash(Image.fromarray(b))
    assert len(content_hash(a)) == 64
    with pytest.raises(ImageError):
        content_hash(tmp_path / "absent.png")


def test_large_jpeg_decoded_in_draft_mode_keeps_content(tmp_path):
    big = Image.new("RGB", (800, 400), (0, 0, 200))
    big.paste((220, 20, 20), (0, 0, 400, 400))
    path = save(big, tmp_path / "big.jpg", quality=95)
    pixels, kept = load_images([path], 32)
    assert kept == [0] and pixels.shape == (1, 32, 32, 3)
    assert pixels[0, 16, 4, 0] > 180 and pixels[0, 16, 28, 2] > 160
    assert load_image(path, draft_size=100).size[0] >= 100
