"""Video decoding, clip sampling, datasets and transforms."""
