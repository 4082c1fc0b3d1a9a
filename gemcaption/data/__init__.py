"""Data: captioned image sets and the images themselves.

It owns the types every loader returns (``types``: :class:`Dataset` of :class:`Sample`), the
dataset formats and their loaders (``loaders``: Flickr8k, class folders, CSV manifests and the demo
set, one registry :data:`~gemcaption.data.loaders.DATASET_FORMATS` behind ``load_dataset``), seeded
stratified splits and duplicate detection (``splits``), robust image reading, content hashes and
the one list of image file endings (``images``), the synthetic demo set (``demo_set``) and the
gemstone description table (``gemstones`` with ``gemstones.csv``). It depends on nothing else in
gemcaption but ``errors``, ``persistence``, ``registry`` and ``text``, so every other package can
depend on it without cycles.
"""
