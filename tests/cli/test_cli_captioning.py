import json

import pytest
from fakes import write_catalogue

from gemcaption.cli import main


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return write_catalogue(tmp_path_factory.mktemp("catalogue"), per_kind=2, size=64).parent


def test_train_then_caption_as_json(catalogue, tmp_path, capsys):
    out = tmp_path / "model"
    code = main(
        [
            "-q",
            "train",
            "--data",
            f"csv:{catalogue / 'captions.csv'}",
            "--decoder",
            "lstm",
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--image-size",
            "64",
            "--embed-dim",
            "16",
            "--ff-dim",
            "16",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip().endswith(str(out))
    assert (out / "manifest.json").is_file() and not (out / "checkpoint.weights.h5").exists()
    image = str(catalogue / "images" / "red_square_0.png")
    assert main(["-q", "caption", "--model", str(out), "--json", "--beam", "2", image]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in rows] == [image] and isinstance(rows[0]["caption"], str)


@pytest.mark.slow
def test_caption_reports_unreadable_images(catalogue, tmp_path, capsys):
    out = tmp_path / "model"
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                f"csv:{catalogue / 'captions.csv'}",
                "--decoder",
                "transformer",
                "--out",
                str(out),
                "--epochs",
                "1",
                "--image-size",
                "64",
                "--embed-dim",
                "16",
                "--ff-dim",
                "16",
            ]
        )
        == 0
    )
    bad = tmp_path / "bad.jpg"
    bad.write_text("no pixels here")
    capsys.readouterr()
    assert main(["-q", "caption", "--model", str(out), str(catalogue / "images" / "blue_circle_1.png"), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "blue_circle_1.png\t" in captured.out
    assert "bad.jpg" in captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "csv:/nonexistent/captions.csv", "--out", "x"], "nonexistent"),
        (["caption", "--model", "/nonexistent/model", "a.jpg"], "not a gemcaption model"),
        (["train", "--data", "flickr8k:/nonexistent", "--out", "x"], "nonexistent"),
    ],
)
def test_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_empty_dataset_is_refused(tmp_path, capsys):
    manifest = tmp_path / "empty.csv"
    manifest.write_text("image,caption\n")
    assert main(["train", "--data", f"csv:{manifest}", "--out", str(tmp_path / "m")]) == 2
    assert "empty" in capsys.readouterr().err.lower()


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().err


@pytest.mark.slow
def test_caption_decoding_options_reach_the_sampler(catalogue, tmp_path, capsys):
    from gemcaption.captioning.captioner import Captioner

    out = tmp_path / "model"
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                f"csv:{catalogue / 'captions.csv'}",
                "--decoder",
                "lstm",
                "--out",
                str(out),
                "--epochs",
                "1",
                "--image-size",
                "64",
                "--embed-dim",
                "16",
                "--ff-dim",
                "16",
            ]
        )
        == 0
    )
    images = [str(p) for p in sorted((catalogue / "images").glob("*.png"))[:4]]
    captioner = Captioner.load(out)

    def run(*options):
        capsys.readouterr()
        assert main(["-q", "caption", "--model", str(out), "--json", *options, *images]) == 0
        return [row["caption"] for row in json.loads(capsys.readouterr().out)]

    assert run() == run("--beam", "1") == captioner.caption(images)
    assert run("--beam", "3") == captioner.caption(images, "beam", width=3, length_penalty=0.7)
    assert run("--beam", "2", "--length-penalty", "0") == captioner.caption(images, beam_width=2, length_penalty=0.0)
    for options in ([], ["--beam", "3"]):
        captions = run("--min-length", "3", "--max-length", "3", *options)
        assert [len(text.split()) for text in captions] == [3] * len(images), captions


@pytest.mark.parametrize(
    "options, message",
    [
        (["--beam", "0"], "--beam must be at least 1"),
        (["--beam", "3", "--length-penalty", "-1"], "--length-penalty"),
        (["--length-penalty", "nan"], "--length-penalty"),
        (["--min-length", "0"], "min_length must be at least 1"),
        (["--min-length", "4", "--max-length", "2"], "must not exceed max_length"),
    ],
)
def test_bad_decoding_options_are_one_line_before_the_model_loads(options, message, capsys):
    for argv in (
        ["caption", "--model", "/nonexistent/model", *options, "a.jpg"],
        ["index", "build", "--model", "/nonexistent/model", "--data", "demo", "--out", "x", *options],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err


def test_train_defaults_and_choices_come_from_the_configs_and_registries(capsys):
    from gemcaption.captioning.config import CaptionerConfig, DecoderConfig, EncoderConfig, TrainingConfig
    from gemcaption.captioning.encoders import ENCODERS
    from gemcaption.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "demo", "--out", "x"])
    training, decoder, encoder = TrainingConfig(), DecoderConfig(), EncoderConfig()
    assert (
        args.epochs,
        args.batch_size,
        args.learning_rate,
        args.warmup_fraction,
        args.decay,
        args.patience,
        args.augment,
    ) == (
        training.epochs,
        training.batch_size,
        training.learning_rate,
        training.warmup_fraction,
        training.decay,
        training.patience,
        training.augment,
    )
    assert (args.decoder, args.embed_dim, args.ff_dim) == (decoder.kind, decoder.embed_dim, decoder.ff_dim)
    assert (args.image_size or args.default_image_size, args.weights) == (encoder.image_size, encoder.weights)
    assert args.seed == CaptionerConfig().seed
    assert (
        build_parser().parse_args(["train", "--data", "d", "--out", "x", "--encoder", "Lite0"]).encoder
        == "efficientnet_lite0"
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "d", "--out", "x", "--encoder", "resnet"])
    err = capsys.readouterr().err
    assert all(name in err for name in ENCODERS.names())


@pytest.mark.parametrize(
    "option, message",
    [
        (["--epochs", "0"], "--epochs"),
        (["--decay", "step"], "--decay"),
        (["--embed-dim", "0"], "--embed-dim"),
        (["--dropout", "1"], "--dropout"),
        (["--label-smoothing", "0.6"], "--label-smoothing"),
        (["--weight-decay", "-0.1"], "--weight-decay"),
    ],
)
def test_bad_training_settings_are_one_line_before_any_data_is_read(option, message, capsys):
    assert main(["train", "--data", "csv:/nonexistent/captions.csv", "--out", "x", *option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "nonexistent" not in err


def test_train_regularisation_options_reach_the_fit(catalogue, tmp_path, capsys, monkeypatch):
    from gemcaption.captioning.captioner import Captioner
    from gemcaption.errors import GemcaptionError

    seen = {}

    def fit(self, train, validation=None, config=None, **kwargs):
        seen.update(training=config, decoder=self.config.decoder)
        raise GemcaptionError("stopped before training")

    monkeypatch.setattr(Captioner, "fit", fit)
    options = ["--dropout", "0.3", "--label-smoothing", "0.1", "--weight-decay", "0.05", "--weights", "none"]
    data = f"csv:{catalogue / 'captions.csv'}"
    assert main(["-q", "train", "--data", data, "--out", str(tmp_path / "m"), *options]) == 2
    assert "stopped before training" in capsys.readouterr().err
    assert seen["decoder"].dropout == 0.3
    assert (seen["training"].label_smoothing, seen["training"].weight_decay) == (0.1, 0.05)


def test_train_refuses_an_out_directory_it_would_destroy_before_reading_data(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["train", "--data", "csv:/nonexistent/captions.csv", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing to replace" in err and "notes.txt" in err
    assert (tmp_path / "notes.txt").read_text() == "keep me"
