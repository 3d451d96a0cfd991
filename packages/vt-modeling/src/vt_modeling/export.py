"""Fixed-size inference of detectors, for ``torch.export``.

The detectors' own inference returns :class:`Instances` whose length depends on the
data (score thresholds, NMS). :class:`ExportableDetector` runs the same computation on
one image of a fixed size but keeps every intermediate set at a fixed size: candidates
that the eager path would drop are masked out instead (they take no part in NMS), and
the detections are padded to ``max_detections`` rows with a count of the valid ones.
The first ``num_valid`` rows equal the eager detections (:meth:`DenseDetector.forward_inference`
or :meth:`GeneralizedRCNN.inference` with ``do_postprocess=False``: at the input
resolution, masks as M x M probabilities of the predicted class).
"""

from __future__ import annotations

import torch
from torch import nn

from vt_modeling._masked_nms import masked_batched_nms
from vt_modeling.meta_arch.fcos import FCOS
from vt_modeling.meta_arch.rcnn import GeneralizedRCNN
from vt_modeling.meta_arch.retinanet import RetinaNet
from vt_modeling.proposal_generator.proposal_utils import rpn_candidates
from vt_modeling.roi_heads.fast_rcnn import fast_rcnn_candidates
from vt_modeling.roi_heads.roi_heads import StandardROIHeads
from vt_structures import Boxes, Instances

__all__ = ["ExportableDetector", "export_detector"]


def _padded_batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    valid: torch.Tensor,
    iou_threshold: float,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`masked_batched_nms` as ``size`` indices.

    Returns:
        index (Tensor[size] int64): kept candidates by decreasing score, then 0.
        keep_valid (Tensor[size] bool): which rows of ``index`` are kept candidates.
    """
    keep = masked_batched_nms(boxes, scores, idxs, valid, iou_threshold)
    keep = torch.cat([keep, keep.new_full((size,), -1)])[:size]
    keep_valid = keep >= 0
    return keep.clamp(min=0), keep_valid


def _masked(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``x`` with the rows where ``valid`` is False set to 0."""
    return torch.where(valid.view(-1, *([1] * (x.dim() - 1))), x, 0)


class ExportableDetector(nn.Module):
    """Wraps a :class:`RetinaNet`, an :class:`FCOS` or a :class:`GeneralizedRCNN` (with
    :class:`StandardROIHeads`, boxes and optionally masks) into a module of fixed-size
    inputs and outputs, exportable with ``torch.export``.

    ``forward(image)`` takes one image (Tensor[3, H, W], the detector's input format)
    and returns a tuple ``(boxes, scores, classes, num_valid)`` or, with masks,
    ``(boxes, scores, classes, masks, num_valid)``:

    - boxes (Tensor[K, 4]): XYXY_ABS boxes at the input resolution.
    - scores (Tensor[K]), classes (Tensor[K] int64).
    - masks (Tensor[K, M, M]): mask probabilities of the predicted class in the box.
    - num_valid (Tensor[] int64): the number of detections; rows from ``num_valid`` on
      are zeros.

    K is ``max_detections``; the detections are sorted by decreasing score as in the
    eager model, of which they are the first K.
    """

    def __init__(self, model: nn.Module, max_detections: int | None = None):
        """
        Args:
            model (nn.Module): a RetinaNet, an FCOS, or a GeneralizedRCNN with StandardROIHeads
                and a proposal generator, in eval mode.
            max_detections (int, optional): K, the number of output rows; defaults to the
                model's maximum number of detections per image.
        """
        super().__init__()
        if isinstance(model, (RetinaNet, FCOS)):
            default_k = model.max_detections_per_image
        elif isinstance(model, GeneralizedRCNN):
            if not isinstance(model.roi_heads, StandardROIHeads):
                raise TypeError(
                    "model: expected StandardROIHeads, got "
                    f"{type(model.roi_heads).__name__} (not supported for export)"
                )
            if model.proposal_generator is None:
                raise ValueError("model: a proposal generator is required for export")
            if model.roi_heads.keypoint_on:
                raise ValueError("model: keypoint heads are not supported for export")
            default_k = model.roi_heads.box_predictor.test_topk_per_image
        else:
            raise TypeError(
                f"model: expected a RetinaNet, an FCOS or a GeneralizedRCNN, got {type(model).__name__}"
            )
        k = default_k if max_detections is None else max_detections
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ValueError(f"max_detections: expected a positive int, got {k!r}")
        self.model = model
        self.max_detections = k

    @property
    def mask_on(self) -> bool:
        """Whether the outputs include masks."""
        return isinstance(self.model, GeneralizedRCNN) and self.model.roi_heads.mask_on

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if image.dim() != 3:
            raise ValueError(f"image: expected shape (C, H, W), got {tuple(image.shape)}")
        images = self.model.preprocess_image([{"image": image}])
        features = self.model.backbone(images.tensor)
        image_size = images.image_sizes[0]
        if isinstance(self.model, (RetinaNet, FCOS)):
            return self._dense_inference(features, image_size)
        return self._rcnn_inference(features, image_size)

    def _pad_outputs(
        self, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        return (
            _masked(boxes, valid),
            _masked(scores, valid),
            _masked(classes, valid),
            valid.sum(),
        )

    def _dense_inference(
        self, features: dict[str, torch.Tensor], image_size: tuple[int, int]
    ) -> tuple[torch.Tensor, ...]:
        m = self.model
        features = [features[f] for f in m.head_in_features]
        predictions = m.head(features)
        if isinstance(m, FCOS):
            pred_logits, pred_deltas, pred_centerness = m._transpose_dense_predictions(
                predictions, [m.num_classes, 4, 1]
            )
            # The geometric mean of class and centerness scores, as FCOS.forward_inference.
            pred_scores = [
                torch.sqrt(x[0].sigmoid() * y[0].sigmoid())
                for x, y in zip(pred_logits, pred_centerness)
            ]
        else:
            pred_logits, pred_deltas = m._transpose_dense_predictions(
                predictions, [m.num_classes, 4]
            )
            pred_scores = [x[0].sigmoid() for x in pred_logits]
        anchors = m.anchor_generator(features)
        all_boxes, all_scores, all_classes = [], [], []
        for anchors_i, scores_i, deltas_i in zip(anchors, pred_scores, pred_deltas):
            # The top candidates of the level among all (anchor, class) pairs; those not
            # above the threshold are masked out of NMS below.
            scores_i = scores_i.flatten()
            scores_i, idx = scores_i.topk(min(scores_i.shape[0], m.test_topk_candidates))
            anchor_idx, class_idx = idx // m.num_classes, idx % m.num_classes
            all_boxes.append(
                m.box2box_transform.apply_deltas(
                    deltas_i[0][anchor_idx], anchors_i.tensor[anchor_idx]
                )
            )
            all_scores.append(scores_i)
            all_classes.append(class_idx)
        boxes, scores, classes = (torch.cat(x) for x in (all_boxes, all_scores, all_classes))
        index, valid = _padded_batched_nms(
            boxes,
            scores,
            classes,
            scores > m.test_score_thresh,
            m.test_nms_thresh,
            self.max_detections,
        )
        return self._pad_outputs(boxes[index], scores[index], classes[index], valid)

    def _proposals(
        self, features: dict[str, torch.Tensor], image_size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The RPN proposals (Tensor[P, 4]) and which are valid (Tensor[P] bool), as
        :func:`find_top_rpn_proposals` at a fixed size P = post_nms_topk."""
        rpn = self.model.proposal_generator
        anchors, logits, deltas = rpn._predict(features)
        proposals = rpn._decode_proposals(anchors, deltas)
        boxes, scores, levels = [], [], []
        for level, (proposals_i, logits_i) in enumerate(zip(proposals, logits)):
            scores_i, idx = logits_i[0].topk(min(logits_i.shape[1], rpn.pre_nms_topk[False]))
            boxes.append(proposals_i[0][idx])
            scores.append(scores_i)
            levels.append(torch.full_like(idx, level))
        boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
        clipped, valid = rpn_candidates(boxes, valid, image_size, rpn.min_box_size)
        index, keep_valid = _padded_batched_nms(
            clipped.tensor, scores, levels, valid, rpn.nms_thresh, rpn.post_nms_topk[False]
        )
        return _masked(clipped.tensor[index], keep_valid), keep_valid

    def _rcnn_inference(
        self, features: dict[str, torch.Tensor], image_size: tuple[int, int]
    ) -> tuple[torch.Tensor, ...]:
        heads = self.model.roi_heads
        predictor = heads.box_predictor
        proposal_boxes, proposal_valid = self._proposals(features, image_size)
        proposals = [Instances(image_size, proposal_boxes=Boxes(proposal_boxes))]
        box_features = heads.box_pooler(
            [features[f] for f in heads.box_in_features], [proposals[0].proposal_boxes]
        )
        predictions = predictor(heads.box_head(box_features))
        (boxes,) = predictor.predict_boxes(predictions, proposals)
        (scores,) = predictor.predict_probs(predictions, proposals)
        # fast_rcnn_inference_single_image over the valid proposals, at a fixed size.
        boxes, scores, classes, candidates = fast_rcnn_candidates(
            boxes, scores, image_size, predictor.test_score_thresh, proposal_valid
        )
        index, keep_valid = _padded_batched_nms(
            boxes, scores, classes, candidates, predictor.test_nms_thresh, self.max_detections
        )
        outputs = self._pad_outputs(boxes[index], scores[index], classes[index], keep_valid)
        if not heads.mask_on:
            return outputs
        det_boxes, det_scores, det_classes, num_valid = outputs
        mask_features = heads.mask_pooler(
            [features[f] for f in heads.mask_in_features], [Boxes(det_boxes)]
        )
        # The mask head's own inference (it may predict only each region's class).
        [detections] = heads.mask_head(
            mask_features, [Instances(image_size, pred_classes=det_classes)]
        )
        masks = _masked(detections.pred_masks[:, 0], keep_valid)
        return det_boxes, det_scores, det_classes, masks, num_valid


def export_detector(
    model: nn.Module,
    image: torch.Tensor,
    max_detections: int | None = None,
    strict: bool = False,
) -> torch.export.ExportedProgram:
    """Export the inference of ``model`` on images of ``image``'s size.

    Args:
        model (nn.Module): a detector supported by :class:`ExportableDetector`, in eval mode.
        image (Tensor[3, H, W]): an example input; the program takes images of this size.
        max_detections (int, optional): the number of output rows (see
            :class:`ExportableDetector`).
        strict (bool): passed to ``torch.export.export``.

    Returns:
        ExportedProgram: ``program.module()(image)`` returns the outputs of
        :class:`ExportableDetector`.
    """
    if model.training:
        raise ValueError("model: expected a model in eval mode (call model.eval())")
    wrapper = ExportableDetector(model, max_detections).eval()
    with torch.no_grad():
        return torch.export.export(wrapper, (image,), strict=strict)
