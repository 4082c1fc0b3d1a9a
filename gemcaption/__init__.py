"""gemcaption: caption gemstone, jewellery and everyday photos, and retrieve similar ones.

The public API, flat::

    from gemcaption import Captioner, Retriever, GemClassifier, load_dataset

Names are imported on first use, so ``import gemcaption`` stays fast and does not load
TensorFlow until a model is needed.
"""

import importlib as _importlib
import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_EXPORTS = {
    # captioning
    "Captioner": "gemcaption.captioning.captioner",
    "CaptionerConfig": "gemcaption.captioning.config",
    "EncoderConfig": "gemcaption.captioning.config",
    "DecoderConfig": "gemcaption.captioning.config",
    "TrainingConfig": "gemcaption.captioning.config",
    "Sampler": "gemcaption.captioning.samplers",
    "GreedySampler": "gemcaption.captioning.samplers",
    "BeamSampler": "gemcaption.captioning.samplers",
    "get_sampler": "gemcaption.captioning.samplers",
    "build_encoder": "gemcaption.captioning.encoders",
    "default_pretrained_encoder": "gemcaption.captioning.encoders",
    "build_decoder": "gemcaption.captioning.decoders",
    "WarmupSchedule": "gemcaption.captioning.schedule",
    "Vocabulary": "gemcaption.captioning.vocabulary",
    "extract_features": "gemcaption.captioning.features",
    "export_savedmodel": "gemcaption.export",
    # retrieval
    "Retriever": "gemcaption.retrieval.retriever",
    "Hit": "gemcaption.retrieval.retriever",
    "SyncReport": "gemcaption.retrieval.sync",
    "TfidfSvdEmbedder": "gemcaption.retrieval.embedders",
    # classification
    "GemClassifier": "gemcaption.classification",
    "describe_gemstone": "gemcaption.data.gemstones",
    # data
    "load_dataset": "gemcaption.data.loaders",
    "split_dataset": "gemcaption.data.splits",
    "Dataset": "gemcaption.data.types",
    "Sample": "gemcaption.data.types",
    "make_demo_set": "gemcaption.data.demo_set",
    "load_image": "gemcaption.data.images",
    "load_images": "gemcaption.data.images",
    # errors
    "GemcaptionError": "gemcaption.errors",
    "ConfigError": "gemcaption.errors",
    "UnknownNameError": "gemcaption.errors",
    "QueryError": "gemcaption.errors",
    "EvaluationError": "gemcaption.errors",
    "ImageError": "gemcaption.errors",
    "DatasetError": "gemcaption.errors",
    "ModelError": "gemcaption.errors",
    "WeightsError": "gemcaption.errors",
    "PixelLimitError": "gemcaption.errors",
    "LockedError": "gemcaption.errors",
    "ConflictError": "gemcaption.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gemcaption' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
