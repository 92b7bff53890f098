"""Data shipped with nettrim: the bundled digits network and its data splits."""
