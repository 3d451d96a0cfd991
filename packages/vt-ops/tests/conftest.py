import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def pytest_collection_modifyitems(config, items):
    import vt_ops

    if vt_ops.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU and vt_ops built with CUDA")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def random_boxes(n: int, size: float = 100.0, dtype=torch.float32, device="cpu", generator=None):
    """Random valid (x1, y1, x2, y2) boxes with realistic overlap."""
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size / 4 + 1
    return torch.cat([xy, xy + wh], dim=1).to(dtype=dtype, device=device)


@pytest.fixture
def make_boxes():
    """The random_boxes factory, for tests (conftest is not importable in importlib mode)."""
    return random_boxes


def random_label_pair(seed: int, shape, num_classes: int = 19, ignore_index: int = 255):
    """A structured ground-truth map (rectangular regions, some ignored) and a
    prediction that agrees with it on most elements, as numpy int64 / uint8 or uint16."""
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, dtype=np.int64)
    flat = label.reshape(-1, shape[-2], shape[-1])
    for img in flat:
        for _ in range(12):
            y, x = rng.integers(0, shape[-2]), rng.integers(0, shape[-1])
            h, w = rng.integers(1, shape[-2] + 1), rng.integers(1, shape[-1] + 1)
            img[y : y + h, x : x + w] = rng.integers(0, num_classes)
    pred = label.copy()
    noise = rng.random(shape) < 0.2
    pred[noise] = rng.integers(0, num_classes, int(noise.sum()))
    label[rng.random(shape) < 0.05] = ignore_index
    return pred, label.astype(np.uint8 if num_classes < 255 else np.uint16)


@pytest.fixture
def make_label_pair():
    """The random_label_pair factory."""
    return random_label_pair
