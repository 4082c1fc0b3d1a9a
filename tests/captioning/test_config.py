"""The captioning configurations: defaults stated once, checked values, JSON round trips."""

import json
import sys

import pytest
from roundtrip import assert_round_trip

from gemcaption.captioning.config import CaptionerConfig, DecoderConfig, EncoderConfig, TrainingConfig, default
from gemcaption.errors import ConfigError, UnknownNameError

ALL = [
    EncoderConfig(),
    DecoderConfig(),
    CaptionerConfig(),
    TrainingConfig(),
    EncoderConfig("efficientnetb0", 64, None),
    DecoderConfig("lstm", seq_len=9, embed_dim=16, dropout=0.0),
    CaptionerConfig(
        encoder=EncoderConfig(image_size=96), decoder=DecoderConfig(num_layers=2), vocab_size=50, min_count=2, seed=7
    ),
    TrainingConfig(
        epochs=2,
        batch_size=8,
        learning_rate=0.02,
        warmup_fraction=0.0,
        decay="constant",
        patience=0,
        augment=True,
        max_captions=3,
        label_smoothing=0.1,
        weight_decay=0.05,
    ),
    DecoderConfig("attention_lstm", embed_dim=16, dropout=0.3),
]


@pytest.mark.parametrize("config", ALL, ids=lambda c: type(c).__name__)
def test_get_config_is_json_and_from_config_gives_it_back(config):
    assert_round_trip(
        config, lambda c: json.dumps(c.get_config()), lambda text: type(config).from_config(json.loads(text))
    )


def test_the_defaults_are_lite0_at_224_offline_and_the_seeds_decoder_and_schedule():
    config = CaptionerConfig()
    assert config.encoder == EncoderConfig("efficientnet_lite0", 224, "imagenet")
    assert config.decoder.get_config() == {
        "kind": "transformer",
        "seq_len": 25,
        "embed_dim": 512,
        "ff_dim": 512,
        "num_heads": 2,
        "num_layers": 1,
        "dropout": 0.1,
    }
    assert (config.vocab_size, config.min_count, config.seed) == (10_000, 1, 0)
    assert TrainingConfig().get_config() == {
        "epochs": 10,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "warmup_fraction": 0.1,
        "decay": "cosine",
        "patience": 3,
        "augment": False,
        "max_captions": None,
        "label_smoothing": 0.0,
        "weight_decay": 0.0,
    }
    assert default(TrainingConfig, "epochs") == 10 and default(CaptionerConfig, "encoder") == EncoderConfig()


def test_names_are_normalised_through_the_registries():
    assert EncoderConfig("EfficientNet-Lite0").name == "efficientnet_lite0"
    assert EncoderConfig("b0").name == "efficientnetb0"
    assert DecoderConfig("LSTM").kind == "lstm"
    assert DecoderConfig("Attention-LSTM").kind == "attention_lstm"
    assert EncoderConfig(weights="None").weights is None and EncoderConfig(weights="ImageNet").weights == "imagenet"
    with pytest.raises(UnknownNameError, match="efficientnet_lite0") as info:
        EncoderConfig("resnet50")
    assert "efficientnetb0" in info.value.choices
    with pytest.raises(UnknownNameError, match="transformer, lstm"):
        DecoderConfig("gru")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: DecoderConfig(seq_len=2), "seq_len"),
        (lambda: DecoderConfig(embed_dim=0), "embed_dim"),
        (lambda: DecoderConfig(dropout=1.5), "dropout"),
        (lambda: DecoderConfig(num_heads=True), "num_heads"),
        (lambda: EncoderConfig(image_size=16), "image_size"),
        (lambda: EncoderConfig(image_size=224.0), "image_size"),
        (lambda: EncoderConfig(weights=3.5), "weights"),
        (lambda: CaptionerConfig(vocab_size=4), "vocab_size"),
        (lambda: CaptionerConfig(seed=-1), "seed"),
        (lambda: TrainingConfig(epochs=0), "epochs"),
        (lambda: TrainingConfig(learning_rate=0), "learning_rate"),
        (lambda: TrainingConfig(warmup_fraction=1.2), "warmup_fraction"),
        (lambda: TrainingConfig(decay="linear"), "decay"),
        (lambda: TrainingConfig(max_captions=0), "max_captions"),
        (lambda: TrainingConfig(augment="yes"), "augment"),
        (lambda: TrainingConfig(label_smoothing=0.6), "label_smoothing"),
        (lambda: TrainingConfig(label_smoothing=-0.1), "label_smoothing"),
        (lambda: TrainingConfig(weight_decay=-1e-4), "weight_decay"),
        (lambda: TrainingConfig(weight_decay="0.1"), "weight_decay"),
    ],
)
def test_bad_values_are_one_config_error_naming_the_setting(build, message):
    with pytest.raises(ConfigError, match=message) as info:
        build()
    assert isinstance(info.value, ValueError) and len(str(info.value).splitlines()) == 1


def test_unknown_keys_are_named_and_nested_dicts_are_read():
    with pytest.raises(ConfigError, match="'embed_size'"):
        DecoderConfig.from_config({"embed_size": 3})
    with pytest.raises(ConfigError, match="'colour', 'size'"):
        CaptionerConfig.from_config({"size": 1, "colour": 2})
    with pytest.raises(ConfigError, match="'layers'"):
        CaptionerConfig.from_config({"decoder": {"layers": 2}})
    with pytest.raises(ConfigError, match="dict"):
        TrainingConfig.from_config([1, 2])
    config = CaptionerConfig.from_config({"decoder": {"kind": "lstm"}, "encoder": {"image_size": 64}})
    assert config.decoder == DecoderConfig("lstm") and config.encoder == EncoderConfig(image_size=64)
    assert CaptionerConfig(decoder={"embed_dim": 8}).decoder.embed_dim == 8


def test_configs_are_frozen_and_replace_checks_the_new_values():
    config = DecoderConfig()
    with pytest.raises(AttributeError):
        config.seq_len = 3
    assert config.replace(seq_len=3).seq_len == 3 and config.seq_len == 25
    with pytest.raises(ConfigError):
        config.replace(seq_len=1)


def test_importing_the_configs_imports_no_tensorflow():
    import subprocess

    code = (
        "import sys, gemcaption.captioning.config as c; c.CaptionerConfig(); "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
