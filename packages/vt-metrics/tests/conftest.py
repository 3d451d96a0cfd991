import numpy as np
import pytest


def structured_label_pair(seed: int, shape, num_classes: int = 19, ignore_index: int = 255):
    """A ground-truth map of rectangular regions with some ignored pixels, and a
    prediction that agrees with it on most pixels (int64 pred, uint8 label)."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, dtype=np.int64)
    for img in label.reshape(-1, shape[-2], shape[-1]):
        for _ in range(10):
            y, x = rng.integers(0, shape[-2]), rng.integers(0, shape[-1])
            h, w = rng.integers(1, shape[-2] + 1), rng.integers(1, shape[-1] + 1)
            img[y : y + h, x : x + w] = rng.integers(0, num_classes)
    pred = label.copy()
    noise = rng.random(shape) < 0.25
    pred[noise] = rng.integers(0, num_classes, int(noise.sum()))
    label[rng.random(shape) < 0.05] = ignore_index
    return pred, label.astype(np.uint8)


@pytest.fixture
def make_label_pair():
    return structured_label_pair
