import numpy as np
import pytest
import torch

from vt_structures.transforms import (
    HFlipTransform,
    NoOpTransform,
    RandomFlip,
    ResizeShortestEdge,
    ResizeTransform,
    apply_augmentations,
)


def test_resize_shortest_edge_respects_max_size():
    image = np.zeros((100, 400, 3), dtype=np.uint8)
    t = ResizeShortestEdge(200, max_size=600).get_transform(image)
    assert isinstance(t, ResizeTransform)
    assert (t.new_h, t.new_w) == (150, 600)  # 200 x 800 would exceed 600
    t = ResizeShortestEdge(50).get_transform(image)
    assert (t.new_h, t.new_w) == (50, 200)
    assert isinstance(ResizeShortestEdge(100).get_transform(image), NoOpTransform)


def test_resize_shortest_edge_sampling_styles():
    rng = np.random.default_rng(0)
    image = torch.zeros(3, 64, 64)
    choice = ResizeShortestEdge((32, 96), sample_style="choice", rng=rng)
    sizes = {choice.get_transform(image).new_h for _ in range(40)}
    assert sizes == {32, 96}
    ranged = ResizeShortestEdge((32, 40), sample_style="range", rng=rng)
    sizes = {ranged.get_transform(image).new_h for _ in range(100)}
    assert sizes <= set(range(32, 41)) and len(sizes) > 3
    with pytest.raises(ValueError, match="sample_style"):
        ResizeShortestEdge(32, sample_style="nope")
    with pytest.raises(ValueError, match="short_edge_length"):
        ResizeShortestEdge((0, 3))


def test_random_flip_probability_and_consistency():
    rng = np.random.default_rng(1)
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    flip = RandomFlip(0.5, rng=rng)
    kinds = [type(flip.get_transform(image)) for _ in range(200)]
    assert 60 < kinds.count(HFlipTransform) < 140
    out, transforms = apply_augmentations([RandomFlip(1.0), ResizeShortestEdge(6)], image)
    assert out.shape == (6, 8)
    boxes = transforms.apply_box(np.array([[0.0, 0.0, 1.0, 3.0]]))
    np.testing.assert_allclose(boxes, [[6.0, 0.0, 8.0, 6.0]])
    with pytest.raises(ValueError, match="exactly one"):
        RandomFlip(horizontal=False)
