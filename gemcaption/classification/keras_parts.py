"""Shared by the Keras models whose parts are functional models built at construction (VAE, GAN)."""


class PrebuiltPartsMixin:
    """Nothing to build later; the compile state (an optimizer, no compiled loss) is rebuilt by ``compile()``."""

    def build(self, input_shape=None):
        """The sub-models are functional and built at construction."""
        self.built = True

    def get_compile_config(self):
        return {}

    def compile_from_config(self, config):
        self.compile()


def softmax_head(input_dim: int, num_classes: int, hidden: int, dropout: float, input_name: str, name: str):
    """Dense classifier over a vector: optional ReLU hidden layer, dropout, softmax (CNN head, VAE latent head)."""
    import keras
    from keras import layers

    inputs = keras.Input((input_dim,), name=input_name)
    x = inputs
    if hidden:
        x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
