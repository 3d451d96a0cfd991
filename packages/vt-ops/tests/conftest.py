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
