"""A JPEG's EXIF orientation, read and applied inside a TensorFlow graph as Pillow does it.

:func:`exif_orientation` walks the JPEG's markers to its APP1 ``Exif`` segment and reads the
orientation tag (0x0112) of the first image directory, in either byte order, with every read
bounded (a damaged or missing block means 1, upright); :func:`upright` turns the decoded pixels
the way Pillow's ``ImageOps.exif_transpose`` does.
"""

from __future__ import annotations

import tensorflow as tf

EXIF_SEARCH_BYTES = 1 << 17  # the EXIF block is an APP1 segment (at most 64 KiB) near the start
EXIF_ORIENTATION_TAG = 0x0112
MAX_SEGMENTS, MAX_IFD_ENTRIES = 16, 64


def exif_orientation(data):
    """The EXIF orientation (1..8) of a JPEG, read from its APP1 ``Exif`` segment's first image
    directory as Pillow's ``getexif`` does; 1 when there is none or it cannot be read."""
    head = tf.io.decode_raw(tf.strings.substr(data, 0, EXIF_SEARCH_BYTES), tf.uint8)
    size = EXIF_SEARCH_BYTES + 16
    raw = tf.cast(tf.pad(head, [[0, size - tf.shape(head)[0]]]), tf.int32)

    def byte(offset):
        return tf.gather(raw, tf.clip_by_value(offset, 0, size - 1))

    def segment(_, offset, tiff):  # walk the markers after SOI until APP1 "Exif\0\0" or the image data
        marker = byte(offset) * 256 + byte(offset + 1)
        exif = tf.reduce_all(tf.stack([byte(offset + 4 + i) for i in range(6)]) == list(b"Exif\0\0"))
        found = tf.logical_and(tf.equal(marker, 0xFFE1), exif)
        length = byte(offset + 2) * 256 + byte(offset + 3)
        stop = tf.logical_or(tf.not_equal(byte(offset), 0xFF), tf.equal(marker, 0xFFDA))
        tiff = tf.where(found, offset + 10, tiff)
        return tf.logical_or(found, stop), offset + 2 + length, tiff

    _, _, tiff = tf.while_loop(
        lambda done, offset, tiff: tf.logical_not(done),
        segment,
        (tf.constant(False), tf.constant(2), tf.constant(-1)),
        maximum_iterations=MAX_SEGMENTS,
    )
    little = tf.equal(byte(tiff), ord("I"))

    def number(offset, width):
        values = [byte(offset + i) for i in range(width)]
        big = sum(v * 256 ** (width - 1 - i) for i, v in enumerate(values))
        small = sum(v * 256**i for i, v in enumerate(values))
        return tf.where(little, small, big)

    directory = tiff + number(tiff + 4, 4)
    entries = directory + 2 + 12 * tf.range(MAX_IFD_ENTRIES)
    listed = tf.range(MAX_IFD_ENTRIES) < number(directory, 2)
    matches = tf.logical_and(listed, number(entries, 2) == EXIF_ORIENTATION_TAG)
    value = tf.reduce_max(tf.where(matches, number(entries + 8, 2), 0))
    valid = tf.logical_and(tf.logical_and(tiff >= 0, byte(0) * 256 + byte(1) == 0xFFD8), (value >= 1) & (value <= 8))
    return tf.where(valid, value, 1)


def upright(image, orientation):
    """``image`` turned upright for an EXIF ``orientation`` (1..8), as Pillow's ``exif_transpose``."""
    return tf.switch_case(
        orientation - 1,
        [
            lambda: image,
            lambda: tf.reverse(image, [1]),  # mirrored
            lambda: tf.reverse(image, [0, 1]),  # upside down
            lambda: tf.reverse(image, [0]),  # mirrored upside down
            lambda: tf.transpose(image, (1, 0, 2)),  # transpose
            lambda: tf.image.rot90(image, k=3),  # turned 90 degrees clockwise to be upright
            lambda: tf.reverse(tf.transpose(image, (1, 0, 2)), [0, 1]),  # transverse
            lambda: tf.image.rot90(image, k=1),  # turned 90 degrees anticlockwise to be upright
        ],
    )
