import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def _random_boxes(n: int, size: float = 100.0, dtype=torch.float32):
    """Random valid (x1, y1, x2, y2) boxes with realistic overlap."""
    xy = torch.rand(n, 2, dtype=torch.float64) * size
    wh = torch.rand(n, 2, dtype=torch.float64) * size / 4 + 1
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


def _random_rotated_boxes(n: int, size: float = 100.0, dtype=torch.float32):
    """Random (cx, cy, w, h, angle) boxes, angles in [-180, 180)."""
    c = torch.rand(n, 2, dtype=torch.float64) * size
    wh = torch.rand(n, 2, dtype=torch.float64) * size / 4 + 1
    a = torch.rand(n, 1, dtype=torch.float64) * 360 - 180
    return torch.cat([c, wh, a], dim=1).to(dtype)


@pytest.fixture
def make_boxes():
    """The random boxes factory (conftest is not importable in importlib mode)."""
    return _random_boxes


@pytest.fixture
def make_rotated_boxes():
    return _random_rotated_boxes
