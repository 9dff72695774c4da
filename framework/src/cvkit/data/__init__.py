"""The data layer: the dataset protocol, image decoding, the tensor cache, splits, the
in-memory batch loader and the augmentation base classes."""
