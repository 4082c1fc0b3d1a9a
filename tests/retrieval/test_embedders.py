"""Caption embedders: TF-IDF + SVD equals scikit-learn's pipeline, survives save/load without pickles."""

import json

import numpy as np
import pytest

from gemcaption.errors import GemcaptionError, ModelError, UnknownNameError
from gemcaption.retrieval.embedders import (
    SVD_ITERATIONS,
    MeanTokenEmbedder,
    TfidfSvdEmbedder,
    build_embedder,
    l2_normalize,
    load_embedder,
    word_ngrams,
)

CAPTIONS = [
    "a red oval ruby on a white background",
    "a blue sapphire cut in an oval shape",
    "a green emerald ring set in gold",
    "two dogs run across the green grass",
    "a dog jumps over a red fence",
    "a man rides a bike down the street",
    "a woman in a blue dress walks her dog",
    "children play football in the park",
    "a gold necklace with a blue pendant",
    "a silver ring with a small diamond",
    "Pendientes de plata con circonitas",
    "a black dog swims in the lake",
]


def test_tfidf_matches_scikit_learn_pipeline():
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    from gemcaption.text import tokenize

    embedder = TfidfSvdEmbedder(dim=5).fit(CAPTIONS)
    reference = TfidfVectorizer(tokenizer=tokenize, lowercase=False, token_pattern=None, sublinear_tf=True)
    expected = reference.fit_transform(CAPTIONS)
    assert sorted(embedder.vocabulary) == sorted(reference.vocabulary_)
    ours = embedder.tfidf(CAPTIONS)
    order = [embedder.vocabulary[t] for t in sorted(reference.vocabulary_, key=reference.vocabulary_.get)]
    np.testing.assert_allclose(ours.toarray()[:, order], expected.toarray(), atol=1e-6)
    svd = TruncatedSVD(5, algorithm="randomized", n_iter=SVD_ITERATIONS, random_state=0).fit(expected)
    np.testing.assert_allclose(
        np.abs(embedder.transform(CAPTIONS)), np.abs(l2_normalize(svd.transform(expected))), atol=1e-4
    )


def test_vectors_are_unit_length_and_similar_captions_score_higher():
    embedder = TfidfSvdEmbedder(dim=8).fit(CAPTIONS)
    vectors = embedder.transform(["a red ruby", "an oval ruby, red", "children play football"])
    assert vectors.shape == (3, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_unknown_words_embed_to_zero_and_accents_are_kept():
    embedder = TfidfSvdEmbedder(dim=8).fit(CAPTIONS)
    assert not embedder.transform(["zzz qqq"]).any()
    assert "circonitas" in embedder.vocabulary and "plata" in embedder.vocabulary


def test_small_vocabulary_skips_svd_and_dim_follows_vocabulary():
    embedder = TfidfSvdEmbedder(dim=256).fit(["red stone", "blue stone"])
    assert embedder.components is None and embedder.dim == 3
    vectors = embedder.transform(["red stone", "blue"])
    assert vectors.shape == (2, 3)
    assert vectors[0] @ embedder.transform(["red"])[0] > 0.5


def test_word_ngrams_add_bigrams():
    assert word_ngrams("A red stone.", 2) == ["a", "red", "stone", "a red", "red stone"]
    embedder = TfidfSvdEmbedder(dim=4, ngram_max=2).fit(CAPTIONS)
    assert "red fence" in embedder.vocabulary


def test_save_load_round_trip_without_pickles(tmp_path):
    embedder = TfidfSvdEmbedder(dim=6, ngram_max=2).fit(CAPTIONS)
    embedder.save(tmp_path / "emb")
    for npy in (tmp_path / "emb").glob("*.npy"):
        np.load(npy, allow_pickle=False)  # raises if an object array (pickle) was written
    manifest = json.loads((tmp_path / "emb" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "gemcaption-embedder" and manifest["format_version"] == 2
    assert manifest["kind"] == "tfidf_svd" and manifest["config"]["dim"] == 6
    assert set(manifest["files"]) == {"terms.json", "idf.npy", "components.npy"}
    loaded = load_embedder(tmp_path / "emb")
    np.testing.assert_array_equal(loaded.transform(CAPTIONS), embedder.transform(CAPTIONS))
    assert loaded.get_config() == embedder.get_config()


def test_unfitted_and_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(GemcaptionError, match="not fitted"):
        TfidfSvdEmbedder().transform(["a red stone"])
    with pytest.raises(GemcaptionError, match="no words"):
        TfidfSvdEmbedder().fit(["", "!!"])
    with pytest.raises(GemcaptionError, match="single string"):
        TfidfSvdEmbedder().fit("a red stone")
    with pytest.raises(UnknownNameError, match="unknown caption embedder 'word2vec'; choose one of: tfidf_svd"):
        build_embedder("word2vec")
    with pytest.raises(ModelError):
        load_embedder(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "embedder.json").write_text('{"kind": "pickle"}')
    with pytest.raises(ModelError, match="unknown caption embedder 'pickle'; choose one of: tfidf_svd, mean_tokens"):
        load_embedder(tmp_path / "bad")


def test_mean_token_embedder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    words = ["<pad>", "a", "red", "blue", "ruby", "sapphire", "dog"]
    embedder = MeanTokenEmbedder(words, rng.normal(size=(len(words), 4))).fit(CAPTIONS)
    vectors = embedder.transform(["a red ruby", "a red ruby ruby", "unknown words only"])
    assert vectors.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()
    embedder.save(tmp_path / "tok")
    loaded = load_embedder(tmp_path / "tok")
    np.testing.assert_allclose(loaded.transform(["a red ruby"]), vectors[:1], atol=1e-6)


def test_mean_token_embedder_from_a_decoder_table():
    class Layer:
        embeddings = np.eye(4, dtype=np.float32)

    class Decoder:
        token_embedding = Layer()

    class Vocabulary:
        words = ["<pad>", "red", "blue", "ruby"]

    class FakeTrained:
        decoder, vocabulary = Decoder(), Vocabulary()

    embedder = MeanTokenEmbedder.from_captioner(FakeTrained()).fit(["red ruby", "blue ruby"])
    red, blue = embedder.transform(["red", "blue"])
    assert red @ blue < 0.5
    with pytest.raises(ModelError):
        MeanTokenEmbedder.from_captioner(object())
