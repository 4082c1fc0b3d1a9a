"""Read PyTorch checkpoints in the legacy (non-zip) serialisation with pickle and numpy only, no torch.

Layout of such a file, as written by ``torch.save(obj, f, _use_new_zipfile_serialization=False)``:

1. a pickled magic number, 2. a pickled protocol version (1001), 3. a pickled dict of system info
(byte order, type sizes), 4. the pickled object itself, where each tensor is rebuilt by
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and each storage is a
persistent id ``("storage", StorageType, key, location, numel, view_metadata)``, 5. the pickled list
of storage keys, 6. for every key in that order: an 8-byte little-endian element count, then the raw
little-endian bytes of the storage.

Nothing in the file runs: pickles 1, 2, 3 and 5 are read with :class:`_PlainUnpickler`, which
refuses every global and persistent id (they hold only numbers, strings, lists and dicts), and
pickle 4 with :class:`_LegacyUnpickler`, which maps the few torch names a state dict needs onto
local stand-ins and refuses everything else.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np

from ...errors import WeightsError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage class name -> numpy dtype (little-endian)
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    """Stands in for ``torch.FloatStorage`` and friends while unpickling."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _StorageRef:
    """A storage that is not read yet: its key, dtype and element count."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


class _TensorRef:
    """A tensor waiting for its storage bytes: a strided view into a storage."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        base, view_offset = self.storage
        data = base.data
        itemsize = data.dtype.itemsize
        numbers = (view_offset, self.offset, *self.size, *self.stride)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise WeightsError(
                f"tensor view of storage {base.key} has a negative or non-integer offset, size or stride"
            )
        if len(self.size) != len(self.stride):
            raise WeightsError(
                f"tensor view of storage {base.key} has {len(self.size)} sizes, {len(self.stride)} strides"
            )
        start = view_offset + self.offset
        if not self.size:
            if start >= data.size:
                raise WeightsError(f"tensor view runs past the end of storage {base.key}")
            return np.array(data[start])
        last = start + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if min(self.size) > 0 and last >= data.size:
            raise WeightsError(f"tensor view runs past the end of storage {base.key}")
        view = np.lib.stride_tricks.as_strided(
            data[start:], shape=self.size, strides=[s * itemsize for s in self.stride], writeable=False
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only (numbers, strings, bytes, lists, tuples, dicts): every global is refused."""

    def find_class(self, module, name):
        raise WeightsError(f"unsupported object {module}.{name} in checkpoint (only plain data is read here)")

    def persistent_load(self, pid):
        raise WeightsError(f"unsupported persistent id in checkpoint: {pid!r}")


def _unpickle(unpickler: pickle.Unpickler):
    try:
        return unpickler.load()
    except MemoryError:  # the pickles are small: a huge allocation means a damaged length field
        raise WeightsError("a length inside the checkpoint's pickles is damaged") from None


def _plain_load(f):
    return _unpickle(_PlainUnpickler(f))


class _LegacyUnpickler(pickle.Unpickler):
    """Maps the few torch globals a state dict needs onto local stand-ins; refuses everything else."""

    SAFE_GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in self.SAFE_GLOBALS:
            return self.SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsError(f"unsupported object {module}.{name} in checkpoint (only tensors and dicts are read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise WeightsError(f"unsupported persistent id in checkpoint: {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if key not in self.storages:
            self.storages[key] = _StorageRef(key, storage_type.dtype, int(numel))
        base = self.storages[key]
        if view_metadata is not None:  # very old files: (view_key, offset, view_size)
            return base, int(view_metadata[1])
        return base, 0


def _resolve(obj):
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return (
            type(obj)((k, _resolve(v)) for k, v in obj.items())
            if isinstance(obj, collections.OrderedDict)
            else {k: _resolve(v) for k, v in obj.items()}
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def read_legacy_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch checkpoint into ``{name: numpy array}`` without importing torch.

    Tensors keep their logical shape (strides are honoured) and dtype (float32 stays float32).
    Raises WeightsError if the file is missing, is a zip-format checkpoint, or is not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    data = path.read_bytes()  # in memory: a damaged length field then cannot ask for gigabytes
    size = len(data)
    with io.BytesIO(data) as f:
        if f.read(4) == b"PK\x03\x04":
            raise WeightsError(f"{path} is a zip-format PyTorch checkpoint; only the legacy format is read")
        f.seek(0)
        try:
            magic = _plain_load(f)
            if magic != LEGACY_MAGIC_NUMBER:
                raise WeightsError(f"{path} is not a legacy PyTorch checkpoint (bad magic number)")
            version = _plain_load(f)
            if version != LEGACY_PROTOCOL_VERSION:
                raise WeightsError(f"{path}: unsupported checkpoint protocol version {version!r}")
            sys_info = _plain_load(f)
            if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
                raise WeightsError(f"{path}: big-endian checkpoints are not supported")
            storages: dict[str, _StorageRef] = {}
            obj = _unpickle(_LegacyUnpickler(f, storages))
            keys = _plain_load(f)
            if not isinstance(keys, list):
                raise WeightsError(f"{path}: the storage key list is not a list")
            for key in keys:
                storage = storages[key]
                header = f.read(8)
                if len(header) != 8:
                    raise WeightsError(f"{path} is truncated (storage {key})")
                count = int(np.frombuffer(header, "<i8")[0])
                nbytes = count * storage.dtype.itemsize
                if count < 0 or nbytes > size - f.tell():
                    raise WeightsError(f"{path} is truncated (storage {key})")
                raw = f.read(nbytes)
                if len(raw) != nbytes:
                    raise WeightsError(f"{path} is truncated (storage {key})")
                storage.data = np.frombuffer(raw, storage.dtype)
            missing = [key for key, storage in storages.items() if storage.data is None]
            if missing:
                raise WeightsError(f"{path}: storage {missing[0]} has no data")
            state = _resolve(obj)
        except WeightsError:
            raise
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # any other failure of a damaged file: one clear error
            detail = str(exc).strip().splitlines()
            raise WeightsError(
                f"{path} could not be read as a legacy PyTorch checkpoint "
                f"({exc.__class__.__name__}: {detail[-1][:200] if detail else 'no detail'})"
            ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict")
    return dict(state)
