import pytest
import torch
import torch.nn.functional as F

from vt_layers import (
    ciou_loss,
    diou_loss,
    giou_loss,
    sigmoid_focal_loss,
    sigmoid_focal_loss_star,
    smooth_l1_loss,
)

tv_ops = pytest.importorskip("torchvision.ops")

REDUCTIONS = ["none", "mean", "sum"]


def _boxes(n, dtype=torch.float64):
    xy = torch.rand(n, 2, dtype=dtype) * 50
    wh = torch.rand(n, 2, dtype=dtype) * 30 + 1
    return torch.cat([xy, xy + wh], 1)


BOX_LOSSES = [
    (giou_loss, tv_ops.generalized_box_iou_loss),
    (diou_loss, tv_ops.distance_box_iou_loss),
    (ciou_loss, tv_ops.complete_box_iou_loss),
]


@pytest.mark.parametrize(("ours", "ref"), BOX_LOSSES, ids=["giou", "diou", "ciou"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_box_losses_match_torchvision(ours, ref, reduction):
    b1, b2 = _boxes(64), _boxes(64)
    b2[:8] = b1[:8]  # identical pairs
    b2[8:16] = b1[8:16] + 200  # disjoint pairs
    b1.requires_grad_(True)
    out = ours(b1, b2, reduction=reduction)
    expected = ref(b1, b2, reduction=reduction)
    torch.testing.assert_close(out, expected)
    (g_ours,) = torch.autograd.grad(out.sum(), b1)
    (g_ref,) = torch.autograd.grad(expected.sum(), b1)
    torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("ours", [giou_loss, diou_loss, ciou_loss])
def test_box_losses_gradcheck_and_values(ours):
    b1, b2 = _boxes(6), _boxes(6)
    if ours is not ciou_loss:  # CIoU's alpha is a constant in backward by definition
        assert torch.autograd.gradcheck(
            lambda a, b: ours(a, b), (b1.clone().requires_grad_(), b2.clone().requires_grad_())
        )
    # identical boxes: zero loss; batched shapes keep their leading dims
    torch.testing.assert_close(
        ours(b1.detach(), b1.detach()), torch.zeros(6, dtype=torch.float64), atol=1e-6, rtol=0
    )
    assert ours(b1.detach().view(2, 3, 4), b2.detach().view(2, 3, 4)).shape == (2, 3)


@pytest.mark.parametrize("ours", [giou_loss, diou_loss, ciou_loss, smooth_l1_loss])
def test_losses_mean_of_empty_is_zero_with_grad(ours):
    a = torch.zeros(0, 4, requires_grad=True)
    b = torch.zeros(0, 4)
    loss = ours(a, b, reduction="mean") if ours is not smooth_l1_loss else ours(a, b, 0.1, "mean")
    assert loss.item() == 0.0
    loss.backward()
    assert a.grad.shape == (0, 4)


def test_box_loss_errors():
    with pytest.raises(ValueError, match="reduction"):
        giou_loss(_boxes(2), _boxes(2), reduction="avg")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        diou_loss(torch.zeros(2, 5), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="same shape"):
        ciou_loss(_boxes(2), _boxes(3))
    with pytest.raises(TypeError, match="boxes1 must be a Tensor"):
        giou_loss([[0, 0, 1, 1]], _boxes(1))


@pytest.mark.parametrize("beta", [0.0, 1e-6, 0.5, 2.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smooth_l1_matches_torch(beta, reduction):
    a, b = torch.randn(40, dtype=torch.float64) * 2, torch.randn(40, dtype=torch.float64)
    ref = F.smooth_l1_loss(a, b, beta=beta if beta >= 1e-5 else 0.0, reduction=reduction)
    torch.testing.assert_close(smooth_l1_loss(a, b, beta, reduction), ref)


def test_smooth_l1_gradcheck():
    a, b = (
        torch.randn(20, dtype=torch.float64, requires_grad=True),
        torch.randn(20, dtype=torch.float64),
    )
    assert torch.autograd.gradcheck(lambda x: smooth_l1_loss(x, b, 0.5, "sum"), (a,))


@pytest.mark.parametrize("alpha", [0.25, 0.5, -1])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 1.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sigmoid_focal_loss_matches_torchvision(alpha, gamma, reduction):
    logits = torch.randn(30, 5, dtype=torch.float64) * 3
    targets = (torch.rand(30, 5) > 0.7).double()
    ref = tv_ops.sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction=reduction)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha, gamma, reduction), ref)


def test_sigmoid_focal_loss_defaults_and_dtype():
    logits = torch.randn(10, 3, dtype=torch.float16)
    targets = torch.randint(0, 2, (10, 3))
    out = sigmoid_focal_loss(logits, targets)  # alpha=-1: no weighting, as detectron2
    assert out.dtype == torch.float32 and out.shape == (10, 3)
    ref = tv_ops.sigmoid_focal_loss(logits.float(), targets.float(), alpha=-1, gamma=2)
    torch.testing.assert_close(out, ref)
    x = torch.randn(8, dtype=torch.float64, requires_grad=True)
    t = (torch.rand(8) > 0.5).double()
    assert torch.autograd.gradcheck(lambda v: sigmoid_focal_loss(v, t, 0.25, 2, "sum"), (x,))


@pytest.mark.parametrize("alpha", [0.25, -1])
@pytest.mark.parametrize("gamma", [1.0, 2.5])
def test_sigmoid_focal_loss_star(alpha, gamma):
    logits = torch.randn(50, dtype=torch.float64) * 4
    targets = (torch.rand(50) > 0.5).double()
    x_t = torch.where(targets > 0, logits, -logits)
    ref = -torch.log(torch.sigmoid(gamma * x_t)) / gamma
    if alpha >= 0:
        ref = ref * torch.where(targets > 0, alpha, 1 - alpha)
    torch.testing.assert_close(sigmoid_focal_loss_star(logits, targets, alpha, gamma), ref)
    torch.testing.assert_close(
        sigmoid_focal_loss_star(logits, targets, alpha, gamma, "mean"), ref.mean()
    )
    with pytest.raises(ValueError, match="gamma"):
        sigmoid_focal_loss_star(logits, targets, gamma=0)
    x = logits[:6].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v: sigmoid_focal_loss_star(v, targets[:6], alpha, gamma, "sum"), (x,)
    )
