"""The learned caption-embedding space shared by texts and images.

A text encoder (caption tokens -> vector) and an image projection (a cached encoder feature grid ->
vector) map into one L2-normalised space, trained jointly with a symmetric contrastive (InfoNCE)
loss on (image, caption) pairs (:mod:`.training`). :class:`~.space.CaptionSpace` embeds texts and
images, and saves/loads as a manifest directory (usable as ``MODEL/space/``). :mod:`.cca` is the
regularised CCA baseline; :mod:`.fusion` combines caption and image vectors for an index.
"""

from .config import SpaceConfig
from .space import CaptionSpace, is_space_directory

__all__ = ["CaptionSpace", "SpaceConfig", "is_space_directory"]
