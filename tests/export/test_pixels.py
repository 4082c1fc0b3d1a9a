"""The exported graph reads image bytes into the same encoder pixels as load_images (Pillow)."""

import io

import numpy as np
import pytest
from PIL import Image

import gemcaption  # noqa: F401  (sets the Keras backend)
from gemcaption.data.images import load_image, load_images

tf = pytest.importorskip("tensorflow")
from gemcaption.export.pixels import decode_to_rgb, encoder_pixels  # noqa: E402

SIZE = 32


def encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth colour blobs with noise: JPEG-like content at any size."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, channels)).astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    smooth = np.asarray(Image.fromarray(coarse.squeeze(), mode).resize((width, height), Image.Resampling.BILINEAR))
    noise = rng.integers(-15, 16, smooth.shape)
    return np.clip(smooth.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def read():
    fn = tf.function(lambda data: encoder_pixels(data, SIZE), autograph=False, reduce_retracing=True)
    return lambda data: fn(tf.constant(data)).numpy()


CASES = {
    "png, shrunk": lambda: encoded(photo(90, 130), "PNG"),
    "png, enlarged": lambda: encoded(photo(20, 12), "PNG"),
    "png, already the size": lambda: encoded(photo(SIZE, SIZE), "PNG"),
    "png, tall (vertical pass first)": lambda: encoded(photo(300, 70), "PNG"),
    "png, grey": lambda: encoded(photo(50, 60, 1)[..., 0], "PNG"),
    "png, transparent on white": lambda: encoded(photo(40, 70, 4), "PNG"),
    "jpeg": lambda: encoded(photo(60, 50), "JPEG", quality=90),
    "jpeg, drafted at 1/4": lambda: encoded(photo(150, 260), "JPEG", quality=85),
    "jpeg, drafted at 1/8": lambda: encoded(photo(300, 420), "JPEG", quality=80),
    "jpeg, grey": lambda: encoded(photo(70, 90, 1)[..., 0], "JPEG"),
    "gif": lambda: encoded(photo(40, 40), "GIF"),
}


@pytest.mark.parametrize("case", CASES)
def test_pixels_equal_pillows(read, case):
    data = CASES[case]()
    expected, kept = load_images([data], SIZE)
    assert kept == [0]
    np.testing.assert_array_equal(read(data), expected[0])


def test_bytes_that_are_not_an_image_fail_the_call(read):
    with pytest.raises(tf.errors.InvalidArgumentError):
        read(b"not an image at all")


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("dpi", [None, (72, 72)])  # with a JFIF APP0 segment before the EXIF one
def test_a_jpegs_exif_orientation_is_applied_as_pillow_does(orientation, dpi):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(photo(30, 50), "JPEG", exif=exif, **({"dpi": dpi} if dpi else {}))
    upright = np.asarray(load_image(data))
    assert upright.shape == ((30, 50, 3) if orientation < 5 else (50, 30, 3))
    np.testing.assert_array_equal(decode_to_rgb(tf.constant(data), 100).numpy(), upright)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_damaged_exif_block_is_ignored_like_a_missing_one():
    data = encoded(photo(30, 50), "JPEG")
    damaged = data[:2] + b"\xff\xe1\x00\x10Exif\x00\x00MM\x00*\xff\xff\xff\xf0" + data[2:]  # IFD past the end
    expected = np.asarray(load_image(damaged))
    np.testing.assert_array_equal(expected, np.asarray(load_image(data)))
    np.testing.assert_array_equal(decode_to_rgb(tf.constant(damaged), 100).numpy(), expected)
