"""Reading images robustly: any source, any mode, in RGB; bad files are reported, never fatal.

* EXIF orientation is applied, so a phone photo taken sideways comes out upright.
* Grayscale, palette, RGBA / LA (composited on white), CMYK and 16-bit images become 8-bit RGB.
* A missing, empty, corrupt, truncated or non-image file raises :class:`ImageError` naming it;
  :func:`load_images` skips such files with one warning each and a summary count.
* Decompression bombs are refused: images above ``Image.MAX_IMAGE_PIXELS`` pixels
  (:data:`MAX_PIXELS` by default, read at call time) raise :class:`ImageError` before decoding;
  ``load_image(..., max_pixels=N)`` sets a lower cap per call (:class:`PixelLimitError`, read from
  the header before any pixel is decoded) and :func:`read_image_size` reads the size alone.
* ``load_image(..., max_side=N)`` shrinks an image right after decoding (JPEG: decoded at a reduced
  scale already), so a large upload does not stay in memory at full size.
* :func:`load_images` resizes with a plain bicubic resize to ``size x size``: no crop, so the
  aspect ratio is not kept (a gem at the edge of a photo stays in view).
* :data:`IMAGE_EXTENSIONS` is the one list of file endings gemcaption takes for images.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import struct
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import ConfigError, ImageError, PixelLimitError

MAX_PIXELS = 64_000_000
"""Default pixel limit (8000 x 8000); larger images are refused as possible decompression bombs."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
"""File name endings (lower case) taken as images by the loaders, the search queries and the web page."""

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a half-grey image
if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class SkippedImageWarning(UserWarning):
    """An image could not be read and was left out (the message names it and says why)."""


ImageFileLike = io.BytesIO | io.BufferedReader

ImageSource = str | os.PathLike | Image.Image | np.ndarray | bytes | bytearray | memoryview
"""What :func:`load_image` reads: a path, a PIL image, a pixel array or the encoded bytes of a file."""


def has_image_extension(path: str | os.PathLike) -> bool:
    """True when the file name of ``path`` ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def find_image_files(folder: str | os.PathLike) -> list[str]:
    """The image files (by :func:`has_image_extension`) below ``folder``, recursively, sorted; hidden
    files and folders (names starting with ".") are left out. ``[]`` when there are none."""
    root = Path(folder)
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
        found += [os.path.join(directory, f) for f in files if not f.startswith(".") and has_image_extension(f)]
    return sorted(found)


def describe_source(source: object) -> str:
    """A short human-readable name for an image source, for messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _check_pixel_limit(image: Image.Image, name: str, max_pixels: int | None = None) -> None:
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise PixelLimitError(f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        raise PixelLimitError(
            f"{name}: {width}x{height} pixels exceeds the limit of {limit} (possible decompression bomb)"
        )


def _open_encoded(
    stream, name: str, draft_size: int | None = None, max_pixels: int | None = None, max_side: int | None = None
) -> Image.Image:
    """Open and fully decode an encoded image, turning every failure into ImageError.

    ``draft_size``: let the JPEG decoder reduce the image by a power of two on the fly while
    keeping both sides at least that large (much faster for big photos that will be shrunk).
    ``max_pixels`` is checked from the header, before decoding; ``max_side`` shrinks the result.
    """
    draft = min(s for s in (draft_size, max_side) if s) if (draft_size or max_side) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            _check_pixel_limit(image, name, max_pixels)
            if draft and image.format == "JPEG" and image.mode in ("RGB", "L"):
                image.draft(image.mode, (draft, draft))
            image.load()
            if max_side and max(image.size) > max_side and image.mode in ("RGB", "RGBA", "L", "LA"):
                image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PixelLimitError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (format not recognised)") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        TypeError,
        MemoryError,
        RuntimeError,
        struct.error,
    ) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({type(exc).__name__}: {exc})") from None
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {array.shape}: expected HxW, HxWx3 or HxWx4")
    if array.size == 0:
        raise ImageError(f"array of shape {array.shape} is empty")
    if array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ImageError("float image array contains NaN or infinity")
        pixels = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    elif array.dtype == np.uint16:
        pixels = (array.astype(np.uint32) // 257).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        pixels = np.clip(array.astype(np.int64) * (255 if array.dtype == np.bool_ else 1), 0, 255).astype(np.uint8)
    else:
        raise ImageError(f"array of dtype {array.dtype} is not an image")
    mode = "L" if pixels.ndim == 2 else ("RGB" if pixels.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(pixels), mode=mode)


def _wide_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit or 32-bit integer / float single-channel images to 8-bit grayscale."""
    values = np.asarray(image, dtype=np.float64)
    top = float(values.max()) if values.size else 0.0
    if image.mode == "F" and top <= 1.0:
        scaled = values * 255.0
    elif top > 255.0:
        scaled = values / 257.0  # 16-bit range 0..65535 to 0..255
    else:
        scaled = values
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparent pixels are composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode == "L" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if mode.startswith("I") or mode == "F":
        return _wide_to_8bit(image).convert("RGB")
    if mode == "1":
        return image.convert("L").convert("RGB")
    try:
        return image.convert("RGB")  # L, CMYK, YCbCr, LAB, HSV
    except (ValueError, OSError) as exc:
        raise ImageError(f"image mode {mode!r} cannot be converted to RGB ({exc})") from None


def read_image_size(source: ImageSource) -> tuple[int, int]:
    """``(width, height)`` of an image, from the file header only (no pixel is decoded).

    Raises :class:`ImageError` when the source is not a readable image header, and
    :class:`PixelLimitError` when Pillow refuses it outright as a decompression bomb.
    """
    name = describe_source(source)
    if isinstance(source, Image.Image):
        return source.size
    if isinstance(source, np.ndarray):
        if source.ndim < 2:
            raise ImageError(f"array of shape {source.shape}: expected HxW, HxWx3 or HxWx4")
        return int(source.shape[1]), int(source.shape[0])
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream: ImageFileLike = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ImageError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    else:
        raise ImageError(f"{name}: unsupported image source type {type(source).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                return image.size
    except Image.DecompressionBombError as exc:
        raise PixelLimitError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        raise ImageError(f"{name}: corrupt or truncated image header ({type(exc).__name__}: {exc})") from None
    finally:
        stream.close()


def load_image(
    source: ImageSource, draft_size: int | None = None, *, max_pixels: int | None = None, max_side: int | None = None
) -> Image.Image:
    """Read one image as an upright 8-bit RGB :class:`PIL.Image.Image`.

    ``source``: a path (str or Path), a PIL image, a numpy array (HxW or HxWx3/4, uint8 or float
    in [0, 1]) or the encoded bytes of an image file. Raises :class:`ImageError` naming the source
    when it is missing, empty, corrupt, truncated, not an image, or larger than the pixel limit.
    ``draft_size`` (optional): a JPEG may be decoded at a reduced scale whose sides stay at least
    this large, when the caller will shrink it anyway (:func:`load_images` does).
    ``max_pixels`` (optional): refuse larger images with :class:`PixelLimitError`, read from the
    header before decoding. ``max_side`` (optional): shrink the result (aspect kept) so that no side
    is longer, right after decoding.
    """
    name = describe_source(source)
    if max_pixels is not None and max_pixels < 1:
        raise ConfigError(f"max_pixels must be positive, got {max_pixels}")
    if max_side is not None and max_side < 1:
        raise ConfigError(f"max_side must be positive, got {max_side}")
    if isinstance(source, Image.Image):
        _check_pixel_limit(source, name, max_pixels)
        image = source
    elif isinstance(source, np.ndarray):
        if max_pixels is not None and source.ndim >= 2 and source.shape[0] * source.shape[1] > max_pixels:
            raise PixelLimitError(
                f"{name}: {source.shape[1]}x{source.shape[0]} pixels exceeds the limit of {max_pixels}"
            )
        image = _from_array(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(f"{name}: empty image data")
        image = _open_encoded(io.BytesIO(bytes(source)), name, draft_size, max_pixels, max_side)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{name}: no such image file")
        if not path.is_file():
            raise ImageError(f"{name}: not a regular file")
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: empty file")
        with open(path, "rb") as handle:
            image = _open_encoded(handle, name, draft_size, max_pixels, max_side)
    else:
        raise ImageError(f"{name}: unsupported image source type {type(source).__name__}")
    with contextlib.suppress(Exception):  # a broken EXIF block must not make a readable image unreadable
        image = ImageOps.exif_transpose(image)
    rgb = to_rgb(image)
    if max_side and max(rgb.size) > max_side:
        rgb = rgb.copy() if rgb is source else rgb
        rgb.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return rgb.copy() if rgb is source else rgb


def load_images(sources: Iterable[ImageSource], size: int, progress: bool = False) -> tuple[np.ndarray, list[int]]:
    """Read and resize images to ``(N, size, size, 3)`` uint8, skipping unreadable ones.

    Returns ``(pixels, kept)`` where ``kept`` lists the indices into ``sources`` that were read.
    Each unreadable source gets one :class:`SkippedImageWarning` naming it, followed by a summary
    warning with the count. Resizing is a plain bicubic resize to a square (no crop).
    """
    from tqdm.auto import tqdm

    size = int(size)
    if size <= 0:
        raise ConfigError(f"size must be positive, got {size}")
    sources = list(sources)
    rows: list[np.ndarray] = []
    kept: list[int] = []
    skipped = 0
    for index, source in enumerate(tqdm(sources, desc="Reading images", unit="img", disable=not progress)):
        try:
            image = load_image(source, draft_size=size)
        except ImageError as exc:
            skipped += 1
            warnings.warn(f"skipping image: {exc}", SkippedImageWarning, stacklevel=2)
            continue
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        rows.append(np.asarray(image, dtype=np.uint8))
        kept.append(index)
    if skipped:
        warnings.warn(
            f"{skipped} of {len(sources)} images could not be read and were skipped", SkippedImageWarning, stacklevel=2
        )
    if not rows:
        return np.zeros((0, size, size, 3), np.uint8), kept
    return np.stack(rows), kept


def content_hash(source: ImageSource) -> str:
    """SHA-256 hex digest identifying an image's content.

    Files and bytes: the hash of the encoded bytes. In-memory images (PIL, numpy): the hash of
    the pixel bytes together with their shape and type, so equal pixels give equal hashes.
    """
    digest = hashlib.sha256()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise ImageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        return digest.hexdigest()
    if isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(bytes(source))
        return digest.hexdigest()
    if isinstance(source, Image.Image):
        digest.update(f"pil:{source.mode}:{source.size}".encode())
        digest.update(source.tobytes())
        return digest.hexdigest()
    if isinstance(source, np.ndarray):
        array = np.ascontiguousarray(source)
        digest.update(f"array:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
        return digest.hexdigest()
    raise ImageError(f"{describe_source(source)}: unsupported image source type")
