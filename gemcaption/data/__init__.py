"""Data: captioned image sets and the images themselves.

It owns the types every loader returns (``types``: :class:`Dataset` of :class:`Sample`), the
loaders of Flickr8k, class folders and CSV manifests (``loaders``), seeded stratified splits
(``splits``), robust image reading and content hashes (``images``), the synthetic demo set
(``demo_set``) and the gemstone description table (``gemstones`` with ``gemstones.csv``). It
depends on nothing else in gemcaption but errors and persistence.
"""
