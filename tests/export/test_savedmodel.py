"""Round trip: a tiny trained captioner (with its learned caption space, MODEL/space/) exported by
``gemcaption export``, loaded back with tf.saved_model.load, serves the captioner's own greedy
captions and the space's embeddings for the same image bytes. Slow: it trains and exports twice."""

import json
from pathlib import Path

import numpy as np
import pytest
from fakes import TINY_CAPTIONER as TINY
from fakes import write_shapes
from PIL import Image

import gemcaption  # noqa: F401  (sets the Keras backend)
from gemcaption.captioning.captioner import Captioner
from gemcaption.cli import main
from gemcaption.data.loaders import Sample

pytestmark = pytest.mark.slow

SPACE = dict(dim=16, word_dim=16, hidden_dim=32, batch_size=16, dropout=0.0, min_count=1, epochs=3)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from gemcaption.space import SpaceConfig

    root = tmp_path_factory.mktemp("export")
    rows = write_shapes(root / "shapes", per_kind=2)
    samples = [Sample(image=p, captions=tuple(c), label=label, split="train") for p, c, label in rows]
    captioner = Captioner("transformer", **TINY)
    captioner.fit(
        samples, samples[::4], epochs=10, batch_size=8, learning_rate=1e-2, verbose=0, space_config=SpaceConfig(**SPACE)
    )
    space = captioner.space
    assert space is not None
    captioner.save(root / "model")  # with MODEL/space/
    # the same drawings as other encodings and sizes: a JPEG to shrink, a PNG to enlarge
    extra = []
    for i, (path, *_rest) in enumerate(rows[::5]):
        image = Image.open(path).convert("RGB")
        for fmt, size in (("JPEG", (150, 110)), ("PNG", (40, 48))):
            target = root / f"extra_{i}.{fmt.lower()}"
            image.resize(size, Image.Resampling.BICUBIC).save(target, fmt)
            extra.append(str(target))
    images = [p for p, *_ in rows] + extra
    return root, Captioner.load(root / "model"), space, images


def export(root, *options):
    code = main(["-q", "export", "--model", str(root / "model"), "--out", str(root / "served"), *options])
    assert code == 0
    import tensorflow as tf

    return tf.saved_model.load(str(root / "served"))


def test_the_export_serves_the_captioners_captions_and_the_spaces_embeddings(model, capsys):
    import tensorflow as tf

    root, captioner, space, images = model
    loaded = export(root)
    assert capsys.readouterr().out.strip() == str(root / "served")  # stdout: only the result
    assert set(loaded.signatures) == {"serving_default", "embed_text"}
    data = tf.constant([Path(path).read_bytes() for path in images])
    served = loaded.signatures["serving_default"](images=data)
    assert set(served) == {"captions", "image_embeddings"}
    captions = [text.decode() for text in served["captions"].numpy()]
    assert captions == captioner.caption(images)
    assert all(captions) and len(set(captions)) > 1  # a trained model, not a constant caption
    grids, kept = captioner.encode(images)
    assert kept == list(range(len(images)))
    np.testing.assert_allclose(served["image_embeddings"].numpy(), space.embed_images(grids), atol=1e-5)

    texts = ["a red square", "A BLUE circle, in gold!", "qwerty zzz", ""]
    vectors = loaded.signatures["embed_text"](texts=tf.constant(texts))["text_embeddings"].numpy()
    np.testing.assert_allclose(vectors, space.embed_texts(texts), atol=1e-5)
    assert not vectors[2].any() and not vectors[3].any()

    manifest = json.loads((root / "served" / "manifest.json").read_text())
    assert manifest["format"] == "gemcaption-savedmodel"
    assert manifest["config"]["source_model"] == str((root / "model").absolute())
    assert "saved_model.pb" in manifest["files"]

    # an empty batch is an empty answer, not an error
    assert loaded.signatures["serving_default"](images=tf.constant([], tf.string))["captions"].shape == (0,)


def test_force_replaces_an_earlier_export_and_no_space_leaves_the_embeddings_out(model, capsys):
    import tensorflow as tf

    root, captioner, _, images = model
    if not (root / "served").exists():
        export(root)
    assert main(["-q", "export", "--model", str(root / "model"), "--out", str(root / "served")]) == 2
    assert "already exists" in capsys.readouterr().err
    loaded = export(root, "--force", "--no-space", "--max-length", "2")
    assert set(loaded.signatures) == {"serving_default"}
    served = loaded.signatures["serving_default"](images=tf.constant([Path(images[0]).read_bytes()]))
    assert set(served) == {"captions"}
    assert served["captions"].numpy()[0].decode() == captioner.caption(images[:1], max_length=2)[0]
    assert not [p.name for p in root.iterdir() if p.name.startswith(".served.")]  # no staging left behind
