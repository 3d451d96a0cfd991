import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_structures import Boxes, Instances, Keypoints, heatmaps_to_keypoints, keypoints_to_heatmap


def test_to_heatmap_cells():
    # box (10, 20)-(30, 60), heatmap 4: cells are 5 wide and 10 high
    boxes = torch.tensor([[10.0, 20, 30, 60]])
    kps = torch.tensor(
        [
            [
                [10.0, 20, 2],  # top-left corner: cell (0, 0)
                [17.0, 45, 1],  # x cell 1, y cell 2 -> 2 * 4 + 1
                [30.0, 60, 2],  # right/bottom edge: the last cell
                [9.9, 30, 2],  # left of the box: invalid
                [15.0, 30, 0],  # not labeled: invalid
                [30.1, 30, 2],  # right of the box: invalid
            ]
        ]
    )
    heatmaps, valid = Keypoints(kps).to_heatmap(boxes, 4)
    assert valid.tolist() == [[1, 1, 1, 0, 0, 0]]
    assert heatmaps.tolist() == [[0, 9, 15, 0, 0, 0]]
    assert heatmaps.dtype == torch.int64 and valid.dtype == torch.int64
    h, v = keypoints_to_heatmap(torch.zeros(0, 6, 3), torch.zeros(0, 4), 56)
    assert h.shape == v.shape == (0, 6)


def test_heatmaps_to_keypoints_peak():
    # one peak per keypoint at a known heatmap cell; the box is as large as the heatmap,
    # so the decoded keypoint is that cell's center shifted by the box origin
    maps = torch.full((2, 3, 8, 8), -10.0)
    cells = [[(1, 2), (5, 5), (7, 0)], [(0, 0), (3, 6), (6, 1)]]  # (row, col)
    for i, per in enumerate(cells):
        for k, (r, c) in enumerate(per):
            maps[i, k, r, c] = 10.0
    rois = torch.tensor([[100.0, 50, 108, 58], [0, 0, 8, 8]])
    out = heatmaps_to_keypoints(maps, rois)
    assert out.shape == (2, 3, 4)
    for i, per in enumerate(cells):
        for k, (r, c) in enumerate(per):
            assert out[i, k, 0].item() == pytest.approx(rois[i, 0].item() + c + 0.5)
            assert out[i, k, 1].item() == pytest.approx(rois[i, 1].item() + r + 0.5)
            assert out[i, k, 2].item() == pytest.approx(10.0)
    # score: softmax at the peak over the heatmap-resolution map: e^0 / (1 + 63 e^-20)
    torch.testing.assert_close(
        out[..., 3], torch.full((2, 3), 1 / (1 + 63 * torch.exp(torch.tensor(-20.0))))
    )


def test_heatmaps_to_keypoints_in_a_larger_box():
    # the heatmap is resized to the box size (bicubic): the decoded point stays near the peak
    r, c = torch.meshgrid(torch.arange(14.0), torch.arange(14.0), indexing="ij")
    maps = (-((r - 4) ** 2 + (c - 9) ** 2) / 4).exp()[None, None] * 5  # smooth peak at (4, 9)
    rois = torch.tensor([[20.0, 10, 76, 66]])  # 56 x 56: 4 pixels per heatmap cell
    out = heatmaps_to_keypoints(maps, rois)
    assert abs(out[0, 0, 0].item() - (20 + 9.5 * 4)) <= 1.0
    assert abs(out[0, 0, 1].item() - (10 + 4.5 * 4)) <= 1.0


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_encode_decode_round_trip(data):
    """A keypoint encoded as a heatmap cell and decoded from a one-hot map lands within the cell."""
    size = data.draw(st.sampled_from([8, 14, 56]))
    x0, y0 = data.draw(st.floats(0, 100)), data.draw(st.floats(0, 100))
    w, h = data.draw(st.floats(size, 200)), data.draw(st.floats(size, 200))
    fx, fy = data.draw(st.floats(0, 0.999)), data.draw(st.floats(0, 0.999))
    box = torch.tensor([[x0, y0, x0 + w, y0 + h]], dtype=torch.float64)
    kp = torch.tensor([[[x0 + fx * w, y0 + fy * h, 2.0]]], dtype=torch.float64)
    index, valid = keypoints_to_heatmap(kp, box, size)
    assert valid.item() == 1
    maps = torch.full((1, 1, size, size), -20.0, dtype=torch.float64)
    maps.view(-1)[index.item()] = 20.0
    out = heatmaps_to_keypoints(maps, box)
    cell_w, cell_h = w / size, h / size
    assert abs(out[0, 0, 0].item() - kp[0, 0, 0].item()) <= 1.5 * cell_w + 1
    assert abs(out[0, 0, 1].item() - kp[0, 0, 1].item()) <= 1.5 * cell_h + 1


def test_keypoints_container():
    t = torch.rand(4, 17, 3)
    kp = Keypoints(t)
    assert len(kp) == 4 and kp.device == torch.device("cpu")
    assert torch.equal(kp[1].tensor, t[1:2]) and torch.equal(kp[1:3].tensor, t[1:3])
    assert torch.equal(kp[torch.tensor([True, False, True, False])].tensor, t[[0, 2]])
    assert torch.equal(Keypoints.cat([kp[:1], kp[1:]]).tensor, t)
    assert repr(kp) == "Keypoints(num_instances=4)" and len(list(kp)) == 4
    assert Keypoints([[[1, 2, 2]]]).tensor.dtype == torch.float32
    assert kp.to(torch.float64).tensor.dtype == torch.float64
    inst = Instances((10, 10), gt_keypoints=kp, gt_boxes=Boxes(torch.rand(4, 4)))
    assert torch.equal(inst[torch.tensor([3, 1])].gt_keypoints.tensor, t[[3, 1]])
    with pytest.raises(ValueError, match=r"keypoints: expected shape \(N, K, 3\), got \(4, 17\)"):
        Keypoints(torch.zeros(4, 17))
    with pytest.raises(ValueError, match=r"rois: expected shape \(4, 4\)"):
        kp.to_heatmap(torch.zeros(3, 4), 56)
    with pytest.raises(ValueError, match="heatmap_size"):
        kp.to_heatmap(torch.zeros(4, 4), 0)
    with pytest.raises(ValueError, match="maps"):
        heatmaps_to_keypoints(torch.zeros(2, 3, 4), torch.zeros(2, 4))
