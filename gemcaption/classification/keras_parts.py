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
