import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_structures import ImageList


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=4),
    div=st.sampled_from([0, 1, 4, 32]),
    pad=st.sampled_from([0.0, -1.5]),
)
def test_from_tensors_pads_to_divisible_size(sizes, div, pad):
    images = [torch.rand(3, h, w) + 1 for h, w in sizes]
    il = ImageList.from_tensors(images, size_divisibility=div, pad_value=pad)
    max_h, max_w = max(h for h, _ in sizes), max(w for _, w in sizes)
    if div > 1:
        max_h, max_w = -(-max_h // div) * div, -(-max_w // div) * div
    assert il.tensor.shape == (len(sizes), 3, max_h, max_w)
    assert il.tensor.is_contiguous()
    assert il.image_sizes == sizes and len(il) == len(sizes)
    for i, (img, (h, w)) in enumerate(zip(images, sizes)):
        assert torch.equal(il[i], img)
        padding = torch.ones_like(il.tensor[i], dtype=torch.bool)
        padding[:, :h, :w] = False
        assert (il.tensor[i][padding] == pad).all()


def test_padding_constraints():
    images = [torch.zeros(1, 10, 20), torch.zeros(1, 30, 5)]
    il = ImageList.from_tensors(images, padding_constraints={"square_size": 64})
    assert il.tensor.shape == (2, 1, 64, 64)
    il = ImageList.from_tensors(images, 4, padding_constraints={"size_divisibility": 16})
    assert il.tensor.shape == (2, 1, 32, 32)
    il = ImageList.from_tensors(images, 7, padding_constraints={"square_size": 0})
    assert il.tensor.shape == (2, 1, 35, 21)
    with pytest.raises(ValueError, match="square_size 16 is smaller"):
        ImageList.from_tensors(images, padding_constraints={"square_size": 16})


def test_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        ImageList.from_tensors([])
    with pytest.raises(TypeError, match="tensors: expected a list"):
        ImageList.from_tensors(torch.zeros(2, 3, 4, 4))
    with pytest.raises(TypeError, match=r"tensors\[1\]"):
        ImageList.from_tensors([torch.zeros(3, 4, 4), [1]])
    with pytest.raises(ValueError, match=r"tensors\[1\]: shape \(1, 4, 4\)"):
        ImageList.from_tensors([torch.zeros(3, 4, 4), torch.zeros(1, 4, 4)])
    with pytest.raises(ValueError, match="size_divisibility"):
        ImageList.from_tensors([torch.zeros(3, 4, 4)], size_divisibility=-2)
    with pytest.raises(ValueError, match="image_sizes"):
        ImageList(torch.zeros(2, 3, 4, 4), [(4, 4)])


def test_to_and_device():
    il = ImageList.from_tensors([torch.zeros(3, 4, 5, dtype=torch.uint8)], pad_value=7)
    assert il.device == torch.device("cpu")
    assert il.to(torch.float32).tensor.dtype == torch.float32
    assert il.to(torch.float32).image_sizes == [(4, 5)]


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_works_under_torch_compile_and_tracing():
    def batch(a, b):
        il = ImageList.from_tensors([a, b], size_divisibility=8, pad_value=-1.0)
        return il.tensor * 2

    a, b = torch.rand(3, 9, 12), torch.rand(3, 13, 7)
    expected = batch(a, b)
    compiled = torch.compile(batch, backend="aot_eager", fullgraph=True, dynamic=False)
    torch.testing.assert_close(compiled(a, b), expected)
    assert expected.shape == (2, 3, 16, 16)
    traced = torch.jit.trace(batch, (a, b))
    torch.testing.assert_close(traced(a, b), expected)
