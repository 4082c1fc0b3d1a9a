"""The legacy PyTorch checkpoint reader never runs code from the file, and damaged files give WeightsError.

A legacy checkpoint is five pickles and raw storage bytes; each pickle is replaced in turn by one that
would create a file when unpickled with plain ``pickle.load``.
"""

import pickle
import struct

import numpy as np
import pytest

from gemcaption.captioning.encoders.efficientnet_lite0 import load_converted
from gemcaption.captioning.encoders.torch_checkpoint import read_legacy_checkpoint
from gemcaption.errors import WeightsError

MAGIC, PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
SYS_INFO = {"protocol_version": PROTOCOL, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _str(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value):
    return b"J" + struct.pack("<i", value)


def _tuple(items):
    return b"(" + b"".join(items) + b"t"


def state_dict_pickle(name: str, key: str, count: int) -> bytes:
    """Pickle 4: ``OrderedDict({name: 1-d float tensor over storage key})``, as torch writes it."""
    pid = _tuple([_str("storage"), _global("torch", "FloatStorage"), _str(key), _str("cpu"), _int(count), b"N"])
    args = _tuple(
        [
            pid + b"Q",
            _int(0),
            _tuple([_int(count)]),
            _tuple([_int(1)]),
            b"\x89",
            _global("collections", "OrderedDict") + b")R",
        ]
    )
    body = _global("collections", "OrderedDict") + b")R(" + _str(name) + _global("torch._utils", "_rebuild_tensor_v2")
    return b"\x80\x02" + body + args + b"Ru."


class CreatesFile:
    """Unpickled by plain pickle, this creates ``path`` (``open(path, "w")``)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def checkpoint_parts(values: np.ndarray) -> list[bytes]:
    """The five pickles and the storage bytes of a checkpoint holding ``{"w": values}``."""
    return [
        pickle.dumps(MAGIC, protocol=2),
        pickle.dumps(PROTOCOL, protocol=2),
        pickle.dumps(SYS_INFO, protocol=2),
        state_dict_pickle("w", "0", len(values)),
        pickle.dumps(["0"], protocol=2),
        struct.pack("<q", len(values)) + values.astype("<f4").tobytes(),
    ]


def test_a_well_formed_checkpoint_reads(tmp_path):
    path = tmp_path / "ok.pth"
    path.write_bytes(b"".join(checkpoint_parts(np.arange(5, dtype=np.float32))))
    np.testing.assert_array_equal(read_legacy_checkpoint(path)["w"], np.arange(5, dtype=np.float32))


@pytest.mark.parametrize("which", range(5), ids=["magic", "version", "sys_info", "state_dict", "storage_keys"])
def test_a_pickle_that_would_create_a_file_is_refused(tmp_path, which):
    marker = tmp_path / "created-by-pickle"
    parts = checkpoint_parts(np.ones(3, np.float32))
    parts[which] = pickle.dumps(CreatesFile(marker), protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(b"".join(parts))
    pickle.loads(parts[which])  # the payload does create the file under plain pickle...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(WeightsError, match="unsupported object"):
        read_legacy_checkpoint(path)
    assert not marker.exists()  # ...but not when the reader reads it


def test_every_truncation_and_bad_count_is_a_weights_error(tmp_path):
    whole = b"".join(checkpoint_parts(np.arange(40, dtype=np.float32)))
    path = tmp_path / "cut.pth"
    for end in list(range(0, len(whole), 7)) + [len(whole) - 1]:
        path.write_bytes(whole[:end])
        with pytest.raises(WeightsError, match="cut.pth"):
            read_legacy_checkpoint(path)
    parts = checkpoint_parts(np.arange(4, dtype=np.float32))
    parts[5] = struct.pack("<q", 1 << 60) + parts[5][8:]  # a count far beyond the file
    path.write_bytes(b"".join(parts))
    with pytest.raises(WeightsError, match="truncated"):
        read_legacy_checkpoint(path)


def test_flipped_bytes_never_escape_as_another_exception(tmp_path):
    whole = bytearray(b"".join(checkpoint_parts(np.arange(8, dtype=np.float32))))
    path = tmp_path / "flipped.pth"
    refused = 0
    for position in range(0, len(whole) - 32):  # the pickles; flips in the raw floats are just other numbers
        damaged = bytearray(whole)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            read_legacy_checkpoint(path)
        except WeightsError:  # any other exception fails the test
            refused += 1
    assert refused > (len(whole) - 32) // 2


def test_converted_weights_refuse_object_arrays(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, **{"stem_conv:0": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(WeightsError, match="weights.npz"):
        load_converted(path)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(WeightsError, match="weights.npz"):
        load_converted(path)
