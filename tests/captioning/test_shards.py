"""Feature shards (captioning/shards.py) and the streamed training batches (captioning/streaming.py)."""

import numpy as np
import pytest
from fakes import make_image

from gemcaption.captioning.shards import MANIFEST, FeatureShards
from gemcaption.captioning.streaming import batch_rows, training_batches


@pytest.fixture(scope="module")
def encoder():
    from gemcaption.captioning.encoders import build_encoder

    return build_encoder("efficientnet_lite0", image_size=32, weights=None)


@pytest.fixture
def images(tmp_path):
    return [make_image(tmp_path / f"{i}.png", (40 * i % 256, 200, 90), seed=i) for i in range(7)]


def _cache(encoder, tmp_path):
    from gemcaption.captioning.features import FeatureCache

    return FeatureCache(encoder, root=tmp_path / "cache")


def test_shards_hold_the_cached_grids_in_order_across_files(encoder, images, tmp_path):
    from gemcaption.captioning.features import extract_features

    cache = _cache(encoder, tmp_path)
    shards, kept = FeatureShards.build(encoder, images, cache=cache, progress=False, rows_per_shard=3)
    grids, _ = extract_features(encoder, images, cache=cache, progress=False)
    assert kept == list(range(7)) and shards.shape == grids.shape
    assert len(list(shards.directory.glob("shard-*.npy"))) == 3  # 3 + 3 + 1 rows
    np.testing.assert_array_equal(shards[:], grids)
    np.testing.assert_array_equal(shards[[6, 0, 3]], grids[[6, 0, 3]])  # any order, across files
    np.testing.assert_array_equal(shards[2:5], grids[2:5])
    np.testing.assert_allclose(shards.pooled(chunk=2), grids.mean(axis=1), rtol=1e-6, atol=1e-6)
    on_disk = np.load(shards.directory / "shard-00001.npy", mmap_mode="r")  # plain, memory-mappable .npy
    assert on_disk.dtype == np.float16 and on_disk.shape == (3, *grids.shape[1:])
    with pytest.raises(IndexError):
        shards.rows([7])


def test_the_same_images_reuse_their_shards_and_another_order_gets_its_own(encoder, images, tmp_path):
    cache = _cache(encoder, tmp_path)
    first, _ = FeatureShards.build(encoder, images, cache=cache, progress=False)
    written = (first.directory / MANIFEST).stat().st_mtime_ns
    again, _ = FeatureShards.build(encoder, images, cache=cache, progress=False)
    assert again.directory == first.directory and (again.directory / MANIFEST).stat().st_mtime_ns == written
    reversed_, _ = FeatureShards.build(encoder, images[::-1], cache=cache, progress=False)
    assert reversed_.directory != first.directory
    np.testing.assert_array_equal(reversed_[:], first[:][::-1])


def test_unreadable_images_are_skipped_and_damaged_shards_rebuilt(encoder, images, tmp_path):
    from gemcaption.errors import ModelError

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    cache = _cache(encoder, tmp_path)
    with pytest.warns(UserWarning):
        shards, kept = FeatureShards.build(encoder, [images[0], bad, images[1]], cache=cache, progress=False)
    assert kept == [0, 2] and len(shards) == 2
    reference = shards[:]
    part = shards.directory / "shard-00000.npy"
    shards.close()
    part.write_bytes(part.read_bytes()[:-10])  # truncated, e.g. by a full disk
    with pytest.raises(ModelError, match="damaged feature shards"):
        FeatureShards(shards.directory)
    with pytest.warns(UserWarning):
        rebuilt, _ = FeatureShards.build(encoder, [images[0], bad, images[1]], cache=cache, progress=False)
    np.testing.assert_array_equal(rebuilt[:], reference)


def test_every_epoch_is_a_new_reproducible_permutation_and_workers_split_each_batch():
    epoch0 = batch_rows(10, 4, seed=3, epoch=0)
    assert [len(b) for b in epoch0] == [4, 4, 2]
    assert sorted(np.concatenate(epoch0).tolist()) == list(range(10))
    assert not np.array_equal(np.concatenate(epoch0), np.concatenate(batch_rows(10, 4, seed=3, epoch=1)))
    assert all(np.array_equal(a, b) for a, b in zip(epoch0, batch_rows(10, 4, seed=3, epoch=0)))
    assert np.array_equal(np.concatenate(batch_rows(10, 4, seed=3, epoch=0, shuffle=False)), np.arange(10))
    halves = [batch_rows(10, 4, seed=3, epoch=0, worker=w, workers=2) for w in range(2)]
    for step, whole in enumerate(epoch0):
        np.testing.assert_array_equal(np.concatenate([halves[0][step], halves[1][step]]), whole)
    with pytest.raises(ValueError, match="worker"):
        batch_rows(10, 4, seed=3, epoch=0, worker=2, workers=2)


def test_training_batches_pair_each_grid_with_its_own_tokens(encoder, images, tmp_path):
    shards, _ = FeatureShards.build(encoder, images, cache=_cache(encoder, tmp_path), progress=False)
    tokens = np.arange(7)[:, None, None] * 100 + np.arange(5)[None, None, :]  # row i: i*100 + position
    tokens = np.repeat(tokens, 2, axis=1)
    dataset = training_batches(shards, tokens, 3, seed=0)
    assert int(dataset.cardinality()) == 3
    grids = shards[:]
    for _ in range(2):  # two epochs, each a full pass
        seen = []
        for (features, inputs), targets in dataset:
            rows = inputs.numpy()[:, 0, 0] // 100
            np.testing.assert_array_equal(features.numpy(), grids[rows])
            np.testing.assert_array_equal(inputs.numpy(), tokens[rows][:, :, :-1])
            np.testing.assert_array_equal(targets.numpy(), tokens[rows][:, :, 1:])
            seen += rows.tolist()
        assert sorted(seen) == list(range(7))
    with pytest.raises(ValueError, match="token rows"):
        training_batches(shards, tokens[:3], 3, seed=0)
