"""A captioner on disk: the directory :meth:`Captioner.save` writes and :meth:`Captioner.load` reads.

Format ``gemcaption-captioner`` version 2, written atomically through
:func:`gemcaption.persistence.save_directory` (a kill at any moment leaves the previous version
loadable)::

    manifest.json        format, format_version 2, kind (the decoder), config, sha256 of each file
    decoder.keras        the Keras decoder (loaded with safe_mode=True: no code runs from the file)
    encoder.weights.h5   the encoder's weights, so loading needs no download
    vocabulary.json      the words, in id order
    history.json, training.png   after training
    space/               the learned caption-embedding space, when the captioner has one: a
                         ``gemcaption-space`` directory with its own manifest (:mod:`gemcaption.space.space`)

``config`` is :meth:`CaptionerConfig.get_config` plus ``encoder_weights`` (``weights_id``, which
keys the feature cache, and ``weights_source``). Version 1 directories (the previous release:
``config.json`` with the settings, no manifest) still load; any other version is a ModelError
naming it. The top-level manifest's checksums cover the files of ``space/`` too, so the captioner and
its space are always from the same save.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ModelError
from ..persistence import (
    has_manifest,
    read_json,
    read_manifest,
    reading,
    resolve_directory,
    save_directory,
    write_manifest,
)
from .config import CaptionerConfig

if TYPE_CHECKING:
    from .captioner import Captioner

FORMAT = "gemcaption-captioner"
FORMAT_VERSION = 2
LEGACY_VERSION = 1
LEGACY_CONFIG = "config.json"
FILES = ("decoder.keras", "encoder.weights.h5", "vocabulary.json")
SPACE_DIRECTORY = "space"


def is_captioner_directory(path) -> bool:
    """True if ``path`` looks like a saved captioner of any supported version (manifest or config.json)."""
    path = Path(path)
    if not path.exists():
        resolve_directory(path, must_exist=False)  # a save interrupted mid-swap: restore its backup
    return path.is_dir() and (has_manifest(path) or (path / LEGACY_CONFIG).is_file())


def saved_config(path) -> dict[str, Any]:
    """What a saved captioner is, without loading it: ``format_version``, ``kind`` (decoder),
    ``config`` (:class:`CaptionerConfig` as a dict) and ``encoder_weights``. ModelError if unreadable."""
    path = Path(path)
    if not is_captioner_directory(path):
        raise ModelError(f"{path}: not a gemcaption model directory (no manifest.json or {LEGACY_CONFIG})")
    if has_manifest(path):
        manifest = read_manifest(path, FORMAT, {FORMAT_VERSION}, verify=False)
        config = dict(manifest.config)
        weights = config.pop("encoder_weights", {})
        return {
            "format_version": manifest.format_version,
            "kind": manifest.kind,
            "config": config,
            "encoder_weights": weights,
        }
    return _legacy_config(path)


def _legacy_config(path: Path) -> dict[str, Any]:
    """The settings of a version 1 directory, in the shape :func:`saved_config` returns."""
    legacy = read_json(path / LEGACY_CONFIG)
    if not isinstance(legacy, dict) or legacy.get("format") != FORMAT:
        raise ModelError(f"{path}: {LEGACY_CONFIG} is not a gemcaption captioner")
    version = legacy.get("format_version")
    if version != LEGACY_VERSION:
        raise ModelError(
            f"{path}: {FORMAT} format version {version!r} in {LEGACY_CONFIG} is not supported "
            f"(this gemcaption reads version {LEGACY_VERSION} there, {FORMAT_VERSION} with a manifest)"
        )
    try:
        encoder = legacy["encoder"]
        weights_id = str(encoder["weights_id"])
        config = {
            "encoder": {
                "name": encoder["name"],
                "image_size": encoder["image_size"],
                "weights": "imagenet" if weights_id.startswith("imagenet") else None,
            },
            "decoder": {"kind": legacy["decoder"], **legacy["decoder_config"]},
            "vocab_size": legacy["vocab_size"],
            "min_count": legacy["min_count"],
            "seed": legacy["seed"],
        }
        weights = {"weights_id": weights_id, "weights_source": encoder["weights_source"]}
    except (KeyError, TypeError) as exc:
        raise ModelError(f"damaged: {path / LEGACY_CONFIG} (missing {exc})") from None
    return {"format_version": LEGACY_VERSION, "kind": legacy["decoder"], "config": config, "encoder_weights": weights}


def check_replaceable(path) -> Path:
    """``path`` if a save may replace it: new, empty, a saved captioner, or holding only the
    training checkpoint (and the temporary file of a checkpoint save that was killed). Any other
    directory is refused (ModelError) rather than deleted."""
    from .training import CHECKPOINT_FILE

    path = Path(path)
    if path.is_dir() and not is_captioner_directory(path):
        ours = (CHECKPOINT_FILE, CHECKPOINT_FILE.replace(".weights.h5", ".weights.tmp.weights.h5"))  # + a killed save's
        others = sorted(p.name for p in path.iterdir() if p.name not in ours)
        if others:
            raise ModelError(
                f"{path}: exists and is not a gemcaption model directory (it holds "
                f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); "
                "refusing to replace it: choose a new directory"
            )
    elif path.exists() and not path.is_dir():
        raise ModelError(f"{path}: exists and is not a directory")
    return path


def save_captioner(captioner: Captioner, path) -> Path:
    """Write ``captioner`` (trained) to directory ``path`` atomically; see the module docstring.

    ``path`` is replaced as a whole: see :func:`check_replaceable`."""
    from .training import write_history

    path = check_replaceable(path)

    encoder = captioner.encoder
    config = {
        **captioner.config.get_config(),
        "encoder_weights": {"weights_id": encoder.weights_id, "weights_source": encoder.weights_source},
    }

    def write(staged: Path) -> None:
        captioner.decoder.save(staged / "decoder.keras")
        encoder.model.save_weights(staged / "encoder.weights.h5")
        captioner.vocabulary.save(staged / "vocabulary.json")
        if captioner.history:
            write_history(captioner.history, staged)
        if getattr(captioner, "space", None) is not None:
            _write_space(captioner.space, staged / SPACE_DIRECTORY)

    save_directory(path, FORMAT, FORMAT_VERSION, captioner.config.decoder.kind, config, write)
    return Path(path)


def load_captioner(cls: type[Captioner], path, feature_cache=True) -> Captioner:
    """The captioner saved in ``path`` (version 1 or 2); ModelError naming the file that fails."""
    from .decoders import decoder_class
    from .encoders import build_encoder
    from .vocabulary import Vocabulary

    path = Path(path)
    saved = saved_config(path)
    path = resolve_directory(path)
    if saved["format_version"] == FORMAT_VERSION:
        read_manifest(path, FORMAT, {FORMAT_VERSION})  # every file present with its checksum
    try:
        config = CaptionerConfig.from_config(saved["config"])
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"damaged: {path} (settings: {exc.__class__.__name__}: {exc})") from None
    captioner = cls(config=config, feature_cache=feature_cache)
    decoder_class(config.decoder.kind)  # imports the decoder's module, registering its class with Keras
    captioner.vocabulary = _load_file(path / "vocabulary.json", Vocabulary.load)
    captioner.decoder = read_keras_file(path / "decoder.keras")
    _check_decoder(captioner, path / "decoder.keras")
    spec = config.encoder
    encoder = build_encoder(spec.name, image_size=spec.image_size, weights=None)
    _load_file(path / "encoder.weights.h5", encoder.model.load_weights)
    weights = saved["encoder_weights"]
    if not isinstance(weights, dict) or not all(
        isinstance(weights.get(k), str) for k in ("weights_id", "weights_source")
    ):
        raise ModelError(f"damaged: {path / 'manifest.json'} (encoder_weights is not a weights_id and weights_source)")
    encoder.weights_id = weights["weights_id"]  # same weights as when trained: same feature-cache entries
    encoder.weights_source = f"{weights['weights_source']} (stored in {path})"
    captioner._encoder = encoder
    history = path / "history.json"
    captioner.history = read_json(history) if history.exists() else {}
    if not isinstance(captioner.history, dict):
        raise ModelError(f"damaged: {history} (not a JSON object)")
    if (path / SPACE_DIRECTORY).exists():
        captioner.space = _read_space(path / SPACE_DIRECTORY)
    captioner.model_dir = str(path.absolute())
    return captioner


def _write_space(space, directory: Path) -> None:
    """The space's files and manifest into ``directory`` inside the captioner's staging directory."""
    from ..space.space import FORMAT as SPACE_FORMAT
    from ..space.space import FORMAT_VERSION as SPACE_VERSION

    directory.mkdir()
    space.write_files(directory)
    write_manifest(directory, SPACE_FORMAT, SPACE_VERSION, space.kind, space.get_config())


def _read_space(directory: Path):
    """The :class:`~gemcaption.space.CaptionSpace` of a captioner's ``space/`` (ModelError if damaged)."""
    from ..space.space import FORMAT as SPACE_FORMAT
    from ..space.space import FORMAT_VERSION as SPACE_VERSION
    from ..space.space import CaptionSpace

    if not directory.is_dir() or not has_manifest(directory):
        raise ModelError(f"damaged: {directory} (not a space directory: no manifest.json)")
    manifest = read_manifest(directory, SPACE_FORMAT, {SPACE_VERSION})
    return CaptionSpace.from_files(directory, manifest.config)


def _load_file(path: Path, load):
    if not path.is_file():
        raise ModelError(f"damaged: {path} (missing)")
    with reading(path):  # Keras, h5py and JSON raise many kinds; all mean the same to the user
        return load(path)


def read_keras_file(path, custom_objects: dict | None = None, compile: bool = False):
    """The Keras model saved in ``path`` (a ``.keras`` file), loaded with ``safe_mode=True``: no
    lambda or other code stored in the file runs, and a file naming a module or class outside
    Keras and gemcaption's registered layers is refused. Every failure (missing, truncated, not a
    zip, unknown class, wrong arguments...) is one :class:`ModelError` ``damaged: PATH (...)``."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"damaged: {path} (missing)")
    with reading(path):
        model = keras.saving.load_model(path, custom_objects=custom_objects, compile=compile, safe_mode=True)
    if not isinstance(model, keras.Model):
        raise ModelError(f"damaged: {path} (holds a {type(model).__name__}, not a Keras model)")
    return model


def _check_decoder(captioner: Captioner, path: Path) -> None:
    """The loaded decoder is a caption decoder of the saved kind whose output matches the vocabulary."""
    from .decoders.base import CaptionDecoder

    decoder = captioner.decoder
    if not isinstance(decoder, CaptionDecoder):
        raise ModelError(f"damaged: {path} (holds a {type(decoder).__name__}, not a caption decoder)")
    vocab_size = getattr(decoder, "vocab_size", None)
    if vocab_size != len(captioner.vocabulary):
        raise ModelError(
            f"damaged: {path} (the decoder predicts {vocab_size} words, the vocabulary has {len(captioner.vocabulary)})"
        )
