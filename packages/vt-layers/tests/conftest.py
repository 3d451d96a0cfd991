import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vt_ops_kernel(*names): needs these vt_ops functions (skipped without them)"
    )


def pytest_collection_modifyitems(config, items):
    import vt_ops

    cuda = torch.cuda.is_available() and vt_ops.cuda_available()
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU and vt_ops built with CUDA")
    for item in items:
        if "cuda" in item.keywords and not cuda:
            item.add_marker(skip_cuda)
        for mark in item.iter_markers("vt_ops_kernel"):
            missing = [name for name in mark.args if not hasattr(vt_ops, name)]
            if missing:
                item.add_marker(pytest.mark.skip(reason=f"vt_ops lacks {', '.join(missing)}"))


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def random_boxes(n: int, size: float = 100.0, dtype=torch.float32, device="cpu"):
    """Random valid (x1, y1, x2, y2) boxes with realistic overlap."""
    xy = torch.rand(n, 2, dtype=torch.float64) * size
    wh = torch.rand(n, 2, dtype=torch.float64) * size / 4 + 1
    return torch.cat([xy, xy + wh], dim=1).to(dtype=dtype, device=device)


@pytest.fixture
def make_boxes():
    """The random_boxes factory (conftest is not importable in importlib mode)."""
    return random_boxes
