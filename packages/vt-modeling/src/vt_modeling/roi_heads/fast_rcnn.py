"""The box predictor of Fast R-CNN: classification scores and box deltas per region."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vt_layers import ShapeSpec, cross_entropy, nonzero_tuple
from vt_modeling._masked_nms import masked_batched_nms
from vt_modeling.box_regression import Box2BoxTransform, _dense_box_regression_loss
from vt_modeling.config import configurable
from vt_structures import Boxes, Instances, RotatedBoxes

__all__ = [
    "FastRCNNOutputLayers",
    "fast_rcnn_candidates",
    "fast_rcnn_inference",
    "fast_rcnn_inference_single_image",
]


def fast_rcnn_inference(
    boxes: list[torch.Tensor],
    scores: list[torch.Tensor],
    image_shapes: list[tuple[int, int]],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> tuple[list[Instances], list[torch.Tensor]]:
    """Per image: threshold the class scores, apply NMS per class and keep the top-k.

    Args:
        boxes (list[Tensor[Ri, K*4 or 4]]): predicted boxes per class (or class-agnostic).
        scores (list[Tensor[Ri, K+1]]): class probabilities; the last is background.
        image_shapes (list[tuple]): (h, w) of each image.
        score_thresh (float): only detections above this score are kept.
        nms_thresh (float): IoU threshold of NMS, in [0, 1].
        topk_per_image (int): keep the top-k detections; < 0 keeps all.

    Returns:
        instances (list[Instances]): per image, "pred_boxes", "scores", "pred_classes".
        kept_indices (list[Tensor]): per image, the index of the input region of each
            detection.
    """
    results = [
        fast_rcnn_inference_single_image(b, s, shape, score_thresh, nms_thresh, topk_per_image)
        for b, s, shape in zip(boxes, scores, image_shapes)
    ]
    return [r[0] for r in results], [r[1] for r in results]


def fast_rcnn_candidates(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    valid: torch.Tensor | None = None,
    box_type: type[Boxes] = Boxes,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (region, class) detection candidates of one image, all of them, row-major,
    with a mask of those that take part in NMS (instead of indexing them out: no
    data-dependent shape, a graph break under ``torch.compile``).

    Args:
        boxes (Tensor[R, K*B or B]): predicted boxes per class (or class-agnostic), B = 4
            coordinates per box (5 for ``RotatedBoxes``).
        scores (Tensor[R, K+1]): class probabilities; the last is background.
        image_shape (tuple): (h, w) of the image; the boxes are clipped to it.
        score_thresh (float): candidates must score above it.
        valid (Tensor[R] bool, optional): the regions that may give candidates.
        box_type (type): ``Boxes`` or ``RotatedBoxes``, the type of the boxes.

    Returns:
        boxes (Tensor[R*K, B]), scores (Tensor[R*K]), classes (Tensor[R*K] int64) and
        valid (Tensor[R*K] bool): finite and above the threshold (and of a valid region).
    """
    finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    if valid is not None:
        finite = finite & valid
    scores = scores[:, :-1]
    num_regions, num_classes = scores.shape
    # Non-finite boxes are zeroed so that clipping accepts them; they stay masked out.
    box_dim = 5 if issubclass(box_type, RotatedBoxes) else 4
    clipped = box_type(torch.where(finite[:, None], boxes, 0.0).reshape(-1, box_dim))
    clipped.clip(image_shape)
    boxes = clipped.tensor.view(num_regions, boxes.shape[1] // box_dim, box_dim)
    boxes = boxes.expand(num_regions, num_classes, box_dim)
    candidates = (scores > score_thresh) & finite[:, None]
    classes = torch.arange(num_classes, device=scores.device).expand(num_regions, num_classes)
    return boxes.reshape(-1, box_dim), scores.flatten(), classes.flatten(), candidates.flatten()


def fast_rcnn_inference_single_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
) -> tuple[Instances, torch.Tensor]:
    """:func:`fast_rcnn_inference` for one image."""
    return _fast_rcnn_inference_single_image(
        boxes, scores, image_shape, score_thresh, nms_thresh, topk_per_image, Boxes
    )


def _fast_rcnn_inference_single_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
    box_type: type[Boxes],
) -> tuple[Instances, torch.Tensor]:
    """:func:`fast_rcnn_inference_single_image` for boxes of ``box_type`` (``Boxes`` or
    ``RotatedBoxes``), suppressed per class with the matching NMS."""
    num_classes = scores.shape[1] - 1
    boxes, scores, classes, candidates = fast_rcnn_candidates(
        boxes, scores, image_shape, score_thresh, box_type=box_type
    )
    keep = masked_batched_nms(boxes, scores, classes, candidates, nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]

    result = Instances(image_shape)
    result.pred_boxes = box_type(boxes[keep])
    result.scores = scores[keep]
    result.pred_classes = classes[keep]
    return result, torch.div(keep, num_classes, rounding_mode="floor")


class FastRCNNOutputLayers(nn.Module):
    """Two linear layers predicting the Fast R-CNN outputs:

    1. proposal-to-detection box regression deltas,
    2. classification scores (K + 1 with background).
    """

    # The box transformation built from a config; the rotated variant replaces it.
    _box2box_transform_type: type = Box2BoxTransform

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec | int,
        *,
        box2box_transform: Box2BoxTransform,
        num_classes: int,
        test_score_thresh: float = 0.0,
        test_nms_thresh: float = 0.5,
        test_topk_per_image: int = 100,
        cls_agnostic_bbox_reg: bool = False,
        smooth_l1_beta: float = 0.0,
        box_reg_loss_type: str = "smooth_l1",
        loss_weight: float | dict[str, float] = 1.0,
        use_fed_loss: bool = False,
        use_sigmoid_ce: bool = False,
        get_fed_loss_cls_weights: Callable[[], torch.Tensor] | None = None,
        fed_loss_num_classes: int = 50,
    ):
        """
        Args:
            input_shape (ShapeSpec): shape of the input feature to this module.
            box2box_transform (Box2BoxTransform or Box2BoxTransformRotated):
            num_classes (int): number of foreground classes.
            test_score_thresh (float): threshold to filter predictions results.
            test_nms_thresh (float): NMS threshold for prediction results.
            test_topk_per_image (int): number of top predictions to produce per image.
            cls_agnostic_bbox_reg (bool): whether to use class agnostic for bbox regression.
            smooth_l1_beta (float): transition point from L1 to L2 loss ("smooth_l1" only).
            box_reg_loss_type (str): box regression loss type: "smooth_l1", "giou",
                "diou" or "ciou".
            loss_weight (float|dict): weights of the losses: a float for all, or a dict
                with "loss_cls" and/or "loss_box_reg".
            use_fed_loss (bool): federated loss (requires sigmoid cross entropy): the
                classification loss covers the classes present in the batch plus
                negative classes sampled by frequency weights.
            use_sigmoid_ce (bool): sigmoid cross entropy instead of softmax.
            get_fed_loss_cls_weights (Callable): a callable with no arguments returning
                the per-class weights (length ``num_classes``) of the federated loss.
            fed_loss_num_classes (int): number of classes of the federated loss.
        """
        super().__init__()
        if isinstance(input_shape, int):
            input_shape = ShapeSpec(channels=input_shape)
        self.num_classes = num_classes
        input_size = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
        self.cls_score = nn.Linear(input_size, num_classes + 1)
        num_bbox_reg_classes = 1 if cls_agnostic_bbox_reg else num_classes
        box_dim = len(box2box_transform.weights)
        self.bbox_pred = nn.Linear(input_size, num_bbox_reg_classes * box_dim)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.constant_(layer.bias, 0)

        self.box2box_transform = box2box_transform
        self.smooth_l1_beta = smooth_l1_beta
        self.test_score_thresh = test_score_thresh
        self.test_nms_thresh = test_nms_thresh
        self.test_topk_per_image = test_topk_per_image
        if box_reg_loss_type not in ("smooth_l1", "giou", "diou", "ciou"):
            raise ValueError(f"box_reg_loss_type: unknown loss '{box_reg_loss_type}'")
        self.box_reg_loss_type = box_reg_loss_type
        if isinstance(loss_weight, (int, float)):
            loss_weight = {"loss_cls": float(loss_weight), "loss_box_reg": float(loss_weight)}
        self.loss_weight = loss_weight
        self.use_fed_loss = use_fed_loss
        self.use_sigmoid_ce = use_sigmoid_ce
        self.fed_loss_num_classes = fed_loss_num_classes
        if self.use_fed_loss:
            if not self.use_sigmoid_ce:
                raise ValueError("use_fed_loss requires use_sigmoid_ce=True")
            if get_fed_loss_cls_weights is None:
                raise ValueError("use_fed_loss requires get_fed_loss_cls_weights")
            weights = torch.as_tensor(get_fed_loss_cls_weights(), dtype=torch.float32)
            if weights.shape != (num_classes,):
                raise ValueError(
                    f"get_fed_loss_cls_weights: expected {num_classes} class weights, got shape {tuple(weights.shape)}"
                )
            self.register_buffer("fed_loss_cls_weights", weights)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: ShapeSpec) -> dict[str, Any]:
        head = cfg.MODEL.ROI_BOX_HEAD
        return {
            "input_shape": input_shape,
            "box2box_transform": cls._box2box_transform_type(weights=head.BBOX_REG_WEIGHTS),
            "num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "cls_agnostic_bbox_reg": head.CLS_AGNOSTIC_BBOX_REG,
            "smooth_l1_beta": head.SMOOTH_L1_BETA,
            "test_score_thresh": cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
            "test_nms_thresh": cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            "test_topk_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
            "box_reg_loss_type": head.BBOX_REG_LOSS_TYPE,
            "loss_weight": {"loss_box_reg": head.BBOX_REG_LOSS_WEIGHT},
            "use_fed_loss": head.USE_FED_LOSS,
            "use_sigmoid_ce": head.USE_SIGMOID_CE,
            "fed_loss_num_classes": head.FED_LOSS_NUM_CLASSES,
        }

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x (Tensor[N, C] or Tensor[N, C, H, W]): per-region features.

        Returns:
            scores (Tensor[N, K+1]) and proposal deltas (Tensor[N, K*B] or Tensor[N, B]).
        """
        if x.dim() > 2:
            x = torch.flatten(x, start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)

    def losses(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            predictions: return values of :meth:`forward`.
            proposals (list[Instances]): proposals that match the features, with fields
                "proposal_boxes", "gt_boxes" and "gt_classes".

        Returns:
            dict[str, Tensor]: "loss_cls" and "loss_box_reg".
        """
        scores, proposal_deltas = predictions
        gt_classes = (
            torch.cat([p.gt_classes for p in proposals], dim=0)
            if len(proposals)
            else torch.empty(0, dtype=torch.int64, device=scores.device)
        )
        if len(proposals):
            proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            if proposal_boxes.requires_grad:
                raise ValueError("Proposals should not require gradients!")
            # Proposals without a matched ground truth (background) keep their own box.
            gt_boxes = torch.cat(
                [(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals],
                dim=0,
            )
        else:
            box_dim = len(self.box2box_transform.weights)
            proposal_boxes = gt_boxes = proposal_deltas.new_empty((0, box_dim))

        if self.use_sigmoid_ce:
            loss_cls = self.sigmoid_cross_entropy_loss(scores, gt_classes)
        else:
            loss_cls = cross_entropy(scores, gt_classes, reduction="mean")
        losses = {
            "loss_cls": loss_cls,
            "loss_box_reg": self.box_reg_loss(
                proposal_boxes, gt_boxes, proposal_deltas, gt_classes
            ),
        }
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    def get_fed_loss_classes(
        self,
        gt_classes: torch.Tensor,
        num_fed_loss_classes: int,
        num_classes: int,
        weight: torch.Tensor,
    ) -> torch.Tensor:
        """The classes of the federated loss: those present in ``gt_classes`` plus
        negative classes sampled with probability proportional to ``weight``, to a total
        of ``num_fed_loss_classes``."""
        unique_gt_classes = torch.unique(gt_classes)
        prob = unique_gt_classes.new_ones(num_classes + 1).float()
        prob[-1] = 0
        if len(unique_gt_classes) < num_fed_loss_classes:
            prob[:num_classes] = weight.float().clone()
            prob[unique_gt_classes] = 0
            sampled = torch.multinomial(
                prob, num_fed_loss_classes - len(unique_gt_classes), replacement=False
            )
            return torch.cat([unique_gt_classes, sampled])
        return unique_gt_classes

    def sigmoid_cross_entropy_loss(
        self, pred_class_logits: torch.Tensor, gt_classes: torch.Tensor
    ) -> torch.Tensor:
        """Binary cross entropy per foreground class, summed and divided by the number
        of regions (federated: only over the selected classes)."""
        if pred_class_logits.numel() == 0:
            return pred_class_logits.new_zeros([1])[0]
        n = pred_class_logits.shape[0]
        k = pred_class_logits.shape[1] - 1
        target = pred_class_logits.new_zeros(n, k + 1)
        target[range(len(gt_classes)), gt_classes] = 1
        target = target[:, :k]
        cls_loss = F.binary_cross_entropy_with_logits(
            pred_class_logits[:, :-1], target, reduction="none"
        )
        weight: torch.Tensor | float = 1.0
        if self.use_fed_loss:
            fed_classes = self.get_fed_loss_classes(
                gt_classes, self.fed_loss_num_classes, k, self.fed_loss_cls_weights
            )
            mask = fed_classes.new_zeros(k + 1)
            mask[fed_classes] = 1
            weight = mask[:k].view(1, k).expand(n, k).float()
        return torch.sum(cls_loss * weight) / n

    def box_reg_loss(
        self,
        proposal_boxes: torch.Tensor,
        gt_boxes: torch.Tensor,
        pred_deltas: torch.Tensor,
        gt_classes: torch.Tensor,
    ) -> torch.Tensor:
        """Box regression loss over the foreground regions, divided by the number of
        regions (so that the loss does not depend on the foreground fraction)."""
        box_dim = proposal_boxes.shape[1]
        fg_inds = nonzero_tuple((gt_classes >= 0) & (gt_classes < self.num_classes))[0]
        if pred_deltas.shape[1] == box_dim:  # class-agnostic
            fg_pred_deltas = pred_deltas[fg_inds]
        else:
            fg_pred_deltas = pred_deltas.view(-1, self.num_classes, box_dim)[
                fg_inds, gt_classes[fg_inds]
            ]
        loss_box_reg = _dense_box_regression_loss(
            [proposal_boxes[fg_inds]],
            self.box2box_transform,
            [fg_pred_deltas.unsqueeze(0)],
            [gt_boxes[fg_inds]],
            ...,
            self.box_reg_loss_type,
            self.smooth_l1_beta,
        )
        return loss_box_reg / max(gt_classes.numel(), 1.0)

    def inference(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> tuple[list[Instances], list[torch.Tensor]]:
        """
        Returns:
            list[Instances]: detections per image; see :func:`fast_rcnn_inference`.
            list[Tensor]: the index of the proposal of each detection.
        """
        boxes = self.predict_boxes(predictions, proposals)
        scores = self.predict_probs(predictions, proposals)
        image_shapes = [x.image_size for x in proposals]
        return fast_rcnn_inference(
            boxes,
            scores,
            image_shapes,
            self.test_score_thresh,
            self.test_nms_thresh,
            self.test_topk_per_image,
        )

    def predict_boxes_for_gt_classes(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> list[torch.Tensor]:
        """
        Returns:
            list[Tensor[Ri, B]]: per image, the box predicted for the ground-truth class
            of each proposal.
        """
        if not len(proposals):
            return []
        _, proposal_deltas = predictions
        proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        n, b = proposal_boxes.shape
        predict_boxes = self.box2box_transform.apply_deltas(proposal_deltas, proposal_boxes)
        k = predict_boxes.shape[1] // b
        if k > 1:
            gt_classes = torch.cat([p.gt_classes for p in proposals], dim=0).clamp(0, k - 1)
            predict_boxes = predict_boxes.view(n, k, b)[
                torch.arange(n, device=predict_boxes.device), gt_classes
            ]
        return list(predict_boxes.split([len(p) for p in proposals]))

    def predict_boxes(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> list[torch.Tensor]:
        """
        Returns:
            list[Tensor[Ri, K*B]]: per image, the predicted boxes of every class
            (K = 1 when class-agnostic).
        """
        if not len(proposals):
            return []
        _, proposal_deltas = predictions
        proposal_boxes = torch.cat([p.proposal_boxes.tensor for p in proposals], dim=0)
        predict_boxes = self.box2box_transform.apply_deltas(proposal_deltas, proposal_boxes)
        return list(predict_boxes.split([len(p) for p in proposals]))

    def predict_probs(
        self, predictions: tuple[torch.Tensor, torch.Tensor], proposals: list[Instances]
    ) -> list[torch.Tensor]:
        """
        Returns:
            list[Tensor[Ri, K+1]]: per image, class probabilities.
        """
        scores, _ = predictions
        probs = scores.sigmoid() if self.use_sigmoid_ce else F.softmax(scores, dim=-1)
        return list(probs.split([len(p) for p in proposals], dim=0))
