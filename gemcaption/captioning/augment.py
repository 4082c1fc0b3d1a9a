"""Training batches with image augmentation (flips, rotation, zoom), as in the seed.

Augmented pixels differ every epoch, so the encoder runs on every batch and the feature cache
is not used: this is many times slower than training on cached features.
"""

import keras
import numpy as np

from ..data.images import load_images


class AugmentedBatches(keras.utils.PyDataset):
    """Yields ``((features, tokens_in), tokens_out)`` with freshly augmented, re-encoded images."""

    def __init__(self, encoder, images, tokens, batch_size, seed=0, rotation=0.1, zoom=0.1):
        super().__init__()
        self.encoder, self.images, self.tokens, self.batch_size = encoder, list(images), tokens, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.images))
        self.augment = keras.Sequential(
            [
                keras.layers.RandomFlip("horizontal", seed=seed),
                keras.layers.RandomRotation(rotation, seed=seed + 1),
                keras.layers.RandomZoom(zoom, seed=seed + 2),
            ]
        )

    def __len__(self):
        return int(np.ceil(len(self.images) / self.batch_size))

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        pixels, kept = load_images([self.images[i] for i in chosen], self.encoder.image_size)
        augmented = np.asarray(self.augment(pixels.astype("float32"), training=True))
        grid = self.encoder.features(np.clip(augmented, 0, 255), batch_size=len(kept))
        tokens = self.tokens[chosen[kept]]
        return (grid, tokens[:, :, :-1]), tokens[:, :, 1:]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.images))
