import numpy as np
import pytest
import torch

from vt_layers import batched_nms, batched_nms_rotated, nms, nms_rotated

tv_ops = pytest.importorskip("torchvision.ops")
shapely_geometry = pytest.importorskip("shapely.geometry")
shapely_affinity = pytest.importorskip("shapely.affinity")

pytestmark = pytest.mark.vt_ops_kernel("nms", "batched_nms", "nms_rotated", "batched_nms_rotated")


def _rotated(n, size=100.0):
    cxcy = torch.rand(n, 2, dtype=torch.float64) * size
    wh = torch.rand(n, 2, dtype=torch.float64) * size / 4 + 1
    angle = torch.rand(n, 1, dtype=torch.float64) * 360 - 180
    return torch.cat([cxcy, wh, angle], 1)


def _polygon(box):
    cx, cy, w, h, a = (float(v) for v in box)
    rect = shapely_geometry.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    # counter-clockwise in image coordinates (y down) is clockwise in y-up math coordinates
    return shapely_affinity.rotate(rect, -a, origin=(cx, cy))


def reference_nms_rotated(boxes, scores, iou_threshold):
    """Greedy NMS with exact polygon IoU (shapely)."""
    polys = [_polygon(b) for b in boxes]
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    keep, removed = [], set()
    for i in order:
        if i in removed:
            continue
        keep.append(i)
        for j in order:
            if j not in removed and j != i and j not in keep:
                inter = polys[i].intersection(polys[j]).area
                union = polys[i].area + polys[j].area - inter
                if union > 0 and inter / union > iou_threshold:
                    removed.add(j)
    return torch.tensor(keep, dtype=torch.int64)


@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.9])
def test_nms_matches_torchvision(make_boxes, iou_threshold):
    boxes = make_boxes(300)
    scores = torch.randperm(300).float() / 300  # distinct scores: a unique answer
    keep = nms(boxes, scores, iou_threshold)
    assert keep.dtype == torch.int64
    assert torch.equal(keep, tv_ops.nms(boxes, scores, iou_threshold))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_batched_nms_matches_torchvision(make_boxes, dtype):
    boxes = make_boxes(400, dtype=torch.float32)
    scores = torch.randperm(400).float() / 400
    idxs = torch.randint(0, 5, (400,))
    expected = tv_ops.batched_nms(boxes.float(), scores, idxs, 0.5)
    keep = batched_nms(
        boxes.to(dtype), scores.to(dtype) if dtype != torch.float16 else scores, idxs, 0.5
    )
    if dtype == torch.float16:  # rounded coordinates: compare with torchvision on the same values
        expected = tv_ops.batched_nms(boxes.half().float(), scores, idxs, 0.5)
    assert torch.equal(keep, expected)


def test_nms_empty():
    for fn, width in ((nms, 4), (nms_rotated, 5)):
        keep = fn(torch.zeros(0, width), torch.zeros(0), 0.5)
        assert keep.shape == (0,) and keep.dtype == torch.int64
    for fn, width in ((batched_nms, 4), (batched_nms_rotated, 5)):
        keep = fn(torch.zeros(0, width), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
        assert keep.shape == (0,) and keep.dtype == torch.int64


@pytest.mark.parametrize("iou_threshold", [0.2, 0.5, 0.8])
def test_nms_rotated_matches_polygon_reference(iou_threshold):
    boxes = _rotated(120)
    scores = torch.randperm(120).double() / 120
    keep = nms_rotated(boxes, scores, iou_threshold)
    assert torch.equal(keep, reference_nms_rotated(boxes, scores, iou_threshold))


def test_nms_rotated_angle_zero_equals_nms(make_boxes):
    boxes = make_boxes(200, dtype=torch.float64)
    scores = torch.randperm(200).double()
    rotated = torch.cat(
        [
            (boxes[:, :2] + boxes[:, 2:]) / 2,
            boxes[:, 2:] - boxes[:, :2],
            torch.zeros(200, 1, dtype=torch.float64),
        ],
        1,
    )
    assert torch.equal(nms_rotated(rotated, scores, 0.5), tv_ops.nms(boxes, scores, 0.5))


def test_nms_rotated_ignores_orientation():
    # the same region at 0 and 180 degrees (and a 90-degree square): IoU 1, one survives
    boxes = torch.tensor(
        [[10.0, 10, 4, 2, 0], [10, 10, 4, 2, 180], [30, 30, 3, 3, 0], [30, 30, 3, 3, 90]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms_rotated(boxes, scores, 0.99).tolist() == [3, 0]


def test_batched_nms_rotated_is_nms_per_class():
    boxes = _rotated(150)
    scores = torch.randperm(150).double()
    idxs = torch.randint(0, 4, (150,))
    keep = batched_nms_rotated(boxes, scores, idxs, 0.4)
    expected = []
    for c in idxs.unique():
        inds = torch.nonzero(idxs == c).flatten()
        expected.append(inds[nms_rotated(boxes[inds], scores[inds], 0.4)])
    expected = torch.cat(expected)
    expected = expected[torch.argsort(scores[expected], descending=True)]
    assert torch.equal(keep, expected)


@pytest.mark.cuda
def test_nms_cuda_equals_cpu(make_boxes):
    boxes = make_boxes(500)
    scores = torch.randperm(500).float()
    idxs = torch.randint(0, 3, (500,))
    assert torch.equal(nms(boxes.cuda(), scores.cuda(), 0.5).cpu(), nms(boxes, scores, 0.5))
    assert torch.equal(
        batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5).cpu(),
        batched_nms(boxes, scores, idxs, 0.5),
    )
    rb = _rotated(300).float()
    rs = torch.randperm(300).float()
    assert torch.equal(nms_rotated(rb.cuda(), rs.cuda(), 0.5).cpu(), nms_rotated(rb, rs, 0.5))
    ri = torch.randint(0, 3, (300,))
    assert torch.equal(
        batched_nms_rotated(rb.cuda(), rs.cuda(), ri.cuda(), 0.5).cpu(),
        batched_nms_rotated(rb, rs, ri, 0.5),
    )
    assert np.all(np.diff(rs[nms_rotated(rb, rs, 0.5)].numpy()) <= 0)
