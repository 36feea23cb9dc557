"""Data: on-disk layouts (sources), download, preprocess into a cache, and the torch Dataset."""
