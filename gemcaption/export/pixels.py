"""Image bytes to the encoder's input inside a TensorFlow graph, pixel for pixel as
:func:`gemcaption.data.images.load_images` does it with Pillow.

* JPEG is decoded with the accurate integer IDCT and, like Pillow's ``draft``, at the largest
  libjpeg scale (1/8, 1/4, 1/2) that keeps both sides at least the target size.
* A JPEG's EXIF orientation is applied as Pillow's ``exif_transpose`` does (read from the APP1
  ``Exif`` segment; a missing or unreadable one means upright).
* PNG, GIF and BMP: grey becomes RGB, and transparency is composited on white.
* The resize to ``size x size`` is Pillow's bicubic resampling re-implemented exactly: the same
  filter (a = -0.5, widened by the scale when shrinking), the same 22-bit fixed-point weights and
  8-bit rounding between the two passes. The sums of products of integers are done in float64,
  where they are exact. Pillow chooses which pass runs first; :data:`VERTICAL_FIRST_ASPECT` is
  our reading of that choice (where it is wrong, some pixels differ by a few levels).

Not reproduced: EXIF orientation of non-JPEG files, CMYK JPEGs, 16-bit PNGs and formats
TensorFlow cannot decode (WebP, TIFF). Bytes TensorFlow cannot decode fail the request.
"""

from __future__ import annotations

import tensorflow as tf

from .exif import exif_orientation, upright

PRECISION_BITS = 22  # Pillow's fixed-point precision for 8-bit resampling (32 - 8 - 2)
DRAFT_SCALES = (1, 2, 4, 8)


def _bicubic(x):
    """Pillow's bicubic filter, a = -0.5, support 2."""
    a = -0.5
    x = tf.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def _resample_weights(in_size, out_size: int) -> tf.SparseTensor:
    """The (out_size, in_size) fixed-point weights of Pillow's ``precompute_coeffs`` and
    ``normalize_coeffs_8bpc`` for one axis, as a float64 sparse matrix of integers."""
    in_size = tf.cast(in_size, tf.int32)
    scale = tf.cast(in_size, tf.float64) / float(out_size)
    filterscale = tf.maximum(scale, 1.0)
    support = 2.0 * filterscale
    ksize = tf.cast(tf.math.ceil(support), tf.int32) * 2 + 1
    center = (tf.range(out_size, dtype=tf.float64) + 0.5) * scale
    xmin = tf.maximum(tf.cast(center - support + 0.5, tf.int32), 0)  # C's (int): truncation
    xmax = tf.minimum(tf.cast(center + support + 0.5, tf.int32), in_size)
    columns = xmin[:, None] + tf.range(ksize)[None, :]  # (out, ksize)
    valid = columns < xmax[:, None]
    ss = 1.0 / filterscale
    weights = _bicubic((tf.cast(columns, tf.float64) - center[:, None] + 0.5) * ss)
    weights = tf.where(valid, weights, tf.zeros_like(weights))
    total = tf.reduce_sum(weights, axis=1, keepdims=True)
    weights = tf.where(total != 0.0, weights / tf.where(total != 0.0, total, 1.0), weights)
    scaled = weights * float(1 << PRECISION_BITS)
    fixed = tf.where(scaled < 0, tf.math.ceil(scaled - 0.5), tf.math.floor(scaled + 0.5))  # (int)(w +- 0.5)
    rows = tf.broadcast_to(tf.range(out_size)[:, None], tf.shape(columns))
    indices = tf.cast(tf.stack([tf.boolean_mask(rows, valid), tf.boolean_mask(columns, valid)], axis=1), tf.int64)
    return tf.SparseTensor(indices, tf.boolean_mask(fixed, valid), tf.cast([out_size, in_size], tf.int64))


def _resample_rows(pixels, out_size: int):
    """One Pillow resampling pass along axis 0 of float64 ``pixels`` (n, m, 3) holding 0..255."""
    n, m = tf.shape(pixels)[0], tf.shape(pixels)[1]
    weights = _resample_weights(n, out_size)
    sums = tf.sparse.sparse_dense_matmul(weights, tf.reshape(pixels, (n, m * 3)))
    sums = sums + float(1 << (PRECISION_BITS - 1))
    out = tf.clip_by_value(tf.math.floor(sums / float(1 << PRECISION_BITS)), 0.0, 255.0)
    return tf.reshape(out, (out_size, m, 3))


VERTICAL_FIRST_ASPECT = 1.8
"""Pillow 13 runs the vertical pass first for some shrinking tall images; "height > 1.8 x width and
the height shrinks" is our reading of when (right for most shapes we tried, not for all)."""


def _horizontal(pixels, size: int):
    return tf.transpose(_resample_rows(tf.transpose(pixels, (1, 0, 2)), size), (1, 0, 2))


def pil_bicubic_resize(image, size: int):
    """``image`` (H, W, 3) uint8 resized to (size, size, 3) uint8 as Pillow's
    ``Image.resize((size, size), BICUBIC)`` does; an image already that size is returned as it is."""
    pixels = tf.cast(image, tf.float64)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    tall = tf.logical_and(
        tf.cast(height, tf.float64) > VERTICAL_FIRST_ASPECT * tf.cast(width, tf.float64), height > size
    )
    out = tf.cond(
        tall,
        lambda: _horizontal(_resample_rows(pixels, size), size),
        lambda: _resample_rows(_horizontal(pixels, size), size),
    )
    same = tf.logical_and(height == size, width == size)
    return tf.cond(same, lambda: tf.cast(image, tf.uint8), lambda: tf.cast(out, tf.uint8))


def _draft_scale(height, width, size: int):
    """Index into :data:`DRAFT_SCALES` of Pillow's JPEG draft scale: the largest of 8, 4, 2, 1 not
    above min(width // size, height // size)."""
    ratio = tf.minimum(width // size, height // size)
    return sum(tf.cast(ratio >= scale, tf.int32) for scale in DRAFT_SCALES[1:])


def _decode_jpeg(data, size: int):
    shape = tf.io.extract_jpeg_shape(data)
    branch = _draft_scale(shape[0], shape[1], size)
    decoders = [
        (lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_ACCURATE")) for r in DRAFT_SCALES
    ]
    return upright(tf.switch_case(branch, decoders), exif_orientation(data))


def _composite_on_white(image):
    """Grey, grey + alpha, RGB or RGBA (H, W, 1..4) uint8 to RGB, alpha composited on white."""
    channels = tf.shape(image)[-1]
    pixels = tf.cast(image, tf.int32)

    def grey_to_rgb(grey):
        return tf.tile(grey, (1, 1, 3))

    def blend(colour, alpha):
        # Pillow's paste with a mask on white: DIV255(255 * (255 - a) + colour * a), its integer rounding
        tmp = 255 * (255 - alpha) + colour * alpha + 128
        return (tmp // 256 + tmp) // 256

    return tf.cast(
        tf.switch_case(
            channels - 1,
            [
                lambda: grey_to_rgb(pixels[..., :1]),
                lambda: grey_to_rgb(blend(pixels[..., :1], pixels[..., 1:2])),
                lambda: pixels[..., :3],
                lambda: blend(pixels[..., :3], pixels[..., 3:4]),
            ],
        ),
        tf.uint8,
    )


def decode_to_rgb(data, size: int):
    """Encoded image bytes (a scalar tf.string) to (H, W, 3) uint8 RGB, as Pillow would read them
    for an encoder of input ``size`` (JPEGs decoded at Pillow's draft scale)."""

    def other():
        image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
        return _composite_on_white(image)

    return tf.cond(tf.io.is_jpeg(data), lambda: _decode_jpeg(data, size), other)


def encoder_pixels(data, size: int):
    """Encoded image bytes to the encoder's (size, size, 3) uint8 input."""
    image = pil_bicubic_resize(decode_to_rgb(data, size), size)
    return tf.ensure_shape(image, (size, size, 3))
