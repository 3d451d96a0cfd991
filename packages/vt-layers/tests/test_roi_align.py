import pytest
import torch

from vt_layers import ROIAlign, ROIAlignRotated, roi_align, roi_align_rotated

tv_ops = pytest.importorskip("torchvision.ops")


def _rois(make_boxes, k, n, size, dtype=torch.float64):
    boxes = make_boxes(k, size=size, dtype=dtype)
    batch = torch.randint(0, n, (k, 1)).to(dtype)
    return torch.cat([batch, boxes], 1)


@pytest.mark.vt_ops_kernel("roi_align")
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2])
def test_roi_align_matches_torchvision(make_boxes, aligned, sampling_ratio):
    x = torch.randn(2, 3, 20, 24, dtype=torch.float64)
    rois = _rois(make_boxes, 30, 2, size=30)
    for output_size in (7, (5, 3)):
        ours = roi_align(x, rois, output_size, 0.5, sampling_ratio, aligned)
        ref = tv_ops.roi_align(x, rois, output_size, 0.5, sampling_ratio, aligned)
        torch.testing.assert_close(ours, ref)
    # per-image list of boxes
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    torch.testing.assert_close(
        roi_align(x, per_image, 4, 0.5, sampling_ratio, aligned),
        tv_ops.roi_align(x, per_image, 4, 0.5, sampling_ratio, aligned),
    )


@pytest.mark.vt_ops_kernel("roi_align")
def test_roi_align_module_and_gradcheck(make_boxes):
    m = ROIAlign((4, 4), spatial_scale=0.25, sampling_ratio=0)
    assert m.aligned is True
    assert (
        repr(m)
        == "ROIAlign(output_size=(4, 4), spatial_scale=0.25, sampling_ratio=0, aligned=True)"
    )
    x = torch.randn(2, 2, 10, 12, dtype=torch.float64, requires_grad=True)
    rois = _rois(make_boxes, 6, 2, size=40)
    torch.testing.assert_close(m(x, rois), tv_ops.roi_align(x, rois, (4, 4), 0.25, 0, True))
    # rois of another dtype are cast to the features' dtype
    torch.testing.assert_close(m(x.float(), rois), m(x, rois).float(), atol=1e-5, rtol=1e-4)
    assert torch.autograd.gradcheck(lambda t: m(t, rois), (x,))
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 5\)"):
        m(x, rois[:, 1:])


def _xyxy_to_rotated(rois):
    b, x1, y1, x2, y2 = rois.unbind(1)
    zero = torch.zeros_like(b)
    return torch.stack([b, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, zero], 1)


@pytest.mark.vt_ops_kernel("roi_align", "roi_align_rotated")
def test_roi_align_rotated_angle_zero_equals_aligned_roi_align(make_boxes):
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    rois = _rois(make_boxes, 20, 2, size=50)
    rois[:, 3:5] = torch.maximum(
        rois[:, 3:5], rois[:, 1:3] + 4
    )  # rotated ROIAlign clamps w, h to >= 1
    ours = roi_align_rotated(x, _xyxy_to_rotated(rois), (5, 4), 0.25, 2)
    torch.testing.assert_close(ours, roi_align(x, rois, (5, 4), 0.25, 2, aligned=True))


@pytest.mark.vt_ops_kernel("roi_align_rotated")
def test_roi_align_rotated_half_turn_flips_output():
    x = torch.randn(1, 2, 24, 24, dtype=torch.float64)
    rois = torch.tensor(
        [[0, 11.0, 12.5, 9.0, 6.0, 30.0], [0, 8.0, 15.0, 5.0, 10.0, -70.0]], dtype=torch.float64
    )
    turned = rois.clone()
    turned[:, 5] += 180
    m = ROIAlignRotated((4, 6), spatial_scale=1.0, sampling_ratio=2)
    assert repr(m) == "ROIAlignRotated(output_size=(4, 6), spatial_scale=1.0, sampling_ratio=2)"
    torch.testing.assert_close(m(x, turned), m(x, rois).flip(-1, -2), atol=1e-9, rtol=1e-7)
    xg = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: m(t, rois), (xg,))
    with pytest.raises(ValueError, match=r"rois must have shape \(K, 6\)"):
        m(x, rois[:, :5])


@pytest.mark.cuda
@pytest.mark.vt_ops_kernel("roi_align", "roi_align_rotated")
def test_roi_align_cuda_equals_cpu(make_boxes):
    x = torch.randn(2, 4, 32, 32)
    rois = _rois(make_boxes, 50, 2, size=120, dtype=torch.float32)
    m = ROIAlign(7, 0.25, 0)
    torch.testing.assert_close(m(x.cuda(), rois.cuda()).cpu(), m(x, rois), atol=1e-5, rtol=1e-4)
    rr = _xyxy_to_rotated(rois)
    rr[:, 5] = torch.rand(50) * 360 - 180
    mr = ROIAlignRotated(7, 0.25, 2)
    torch.testing.assert_close(mr(x.cuda(), rr.cuda()).cpu(), mr(x, rr), atol=1e-5, rtol=1e-4)
