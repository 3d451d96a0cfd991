"""The base of dense (one-stage) detectors such as RetinaNet and FCOS."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vt_modeling.backbone import Backbone
from vt_modeling.meta_arch.rcnn import _NormalizedImagesMixin, _rescale_outputs
from vt_structures import Boxes, ImageList, Instances

__all__ = ["DenseDetector", "permute_to_N_HWA_K"]


def permute_to_N_HWA_K(tensor: torch.Tensor, K: int) -> torch.Tensor:
    """Transpose/reshape a tensor from (N, (A x K), H, W) to (N, (HxWxA), K).

    Args:
        tensor (Tensor[N, A*K, H, W]): a dense prediction of one level.
        K (int): the number of values predicted per anchor.

    Returns:
        Tensor[N, H*W*A, K]
    """
    if tensor.dim() != 4:
        raise ValueError(f"tensor: expected 4 dimensions (N, A*K, H, W), got {tuple(tensor.shape)}")
    N, _, H, W = tensor.shape
    if tensor.shape[1] % K != 0:
        raise ValueError(f"tensor: {tensor.shape[1]} channels are not a multiple of K={K}")
    tensor = tensor.view(N, -1, K, H, W).permute(0, 3, 4, 1, 2)
    return tensor.reshape(N, -1, K)


class DenseDetector(_NormalizedImagesMixin, nn.Module):
    """Base class for dense detector. We define a dense detector as a fully-convolutional
    model that makes per-pixel (i.e. dense) predictions."""

    box2box_transform: Any

    def __init__(
        self,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: list[str] | None = None,
        *,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
    ):
        """
        Args:
            backbone: backbone module.
            head: head module.
            head_in_features: backbone features to use in head; all of them, by
                increasing stride, when None.
            pixel_mean: per-channel mean used to normalize the input.
            pixel_std: per-channel std used to normalize the input.
        """
        super().__init__()
        self.backbone = backbone
        self.head = head
        if head_in_features is None:
            shapes = self.backbone.output_shape()
            self.head_in_features = sorted(shapes.keys(), key=lambda x: shapes[x].stride)
        else:
            missing = set(head_in_features) - set(backbone.output_shape())
            if missing:
                raise ValueError(
                    f"head_in_features: {sorted(missing)} are not outputs of the backbone "
                    f"({sorted(backbone.output_shape())})"
                )
            self.head_in_features = list(head_in_features)
        self._register_pixel_stats(pixel_mean, pixel_std)

    def forward(self, batched_inputs: list[dict[str, Any]]) -> Any:
        """
        Args:
            batched_inputs: a list, batched outputs of a dataset mapper. Each item is a
                dict with "image" (Tensor in (C, H, W) format), "instances" (ground truth
                Instances with "gt_boxes" and "gt_classes", training) and "height",
                "width" (the desired output resolution, inference).

        Returns:
            In training, dict[str, Tensor]: mapping from a named loss to a scalar tensor.
            At inference, list[dict]: one {"instances": Instances} per image, with
            "pred_boxes", "scores" and "pred_classes" at the requested resolution.
        """
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        features = [features[f] for f in self.head_in_features]
        predictions = self.head(features)
        if self.training:
            if "instances" not in batched_inputs[0]:
                raise ValueError("batched_inputs: 'instances' annotations are required in training")
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            return self.forward_training(images, features, predictions, gt_instances)
        results = self.forward_inference(images, features, predictions)
        return _rescale_outputs(results, batched_inputs, images.image_sizes, "instances")

    def forward_training(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: list[list[torch.Tensor]],
        gt_instances: list[Instances],
    ) -> dict[str, torch.Tensor]:
        """The losses of a batch, from the head's ``predictions`` (implemented by
        subclasses).

        Args:
            images (ImageList): the normalized, padded images.
            features (list[Tensor]): the backbone features in ``head_in_features``.
            predictions (list[list[Tensor]]): the head outputs, each a list over levels.
            gt_instances (list[Instances]): the ground truth of each image.

        Returns:
            dict[str, Tensor]: named scalar losses.
        """
        raise NotImplementedError

    def forward_inference(
        self,
        images: ImageList,
        features: list[torch.Tensor],
        predictions: list[list[torch.Tensor]],
    ) -> list[Instances]:
        """The detections of each image at the input resolution (implemented by
        subclasses).

        Args:
            images (ImageList): the normalized, padded images.
            features (list[Tensor]): the backbone features in ``head_in_features``.
            predictions (list[list[Tensor]]): the head outputs, each a list over levels.

        Returns:
            list[Instances]: "pred_boxes", "scores" and "pred_classes" per image.
        """
        raise NotImplementedError

    def _transpose_dense_predictions(
        self, predictions: list[list[torch.Tensor]], dims_per_anchor: list[int]
    ) -> list[list[torch.Tensor]]:
        """Transpose the dense per-level predictions.

        Args:
            predictions: a list of outputs, each a list of per-level predictions with
                shape (N, Ai x K, Hi, Wi), where N is the number of images, Ai the number
                of anchors per location on level i, K the dimension of predictions per
                anchor.
            dims_per_anchor: the value of K for each predictions, e.g. 4 for box
                prediction, #classes for classification prediction.

        Returns:
            list[list[Tensor]]: each prediction is transposed to (N, Hi x Wi x Ai, K).
        """
        if len(predictions) != len(dims_per_anchor):
            raise ValueError(
                f"dims_per_anchor: expected {len(predictions)} values (one per prediction), "
                f"got {len(dims_per_anchor)}"
            )
        return [
            [permute_to_N_HWA_K(x, dim_per_anchor) for x in pred]
            for pred, dim_per_anchor in zip(predictions, dims_per_anchor)
        ]

    def _ema_update(
        self, name: str, value: float, initial_value: float, momentum: float = 0.9
    ) -> float:
        """Apply an EMA update on ``self.name``; ``initial_value`` stands for it when unset.

        Returns:
            float: the updated EMA value.
        """
        old = getattr(self, name, initial_value)
        new = old * momentum + value * (1 - momentum)
        setattr(self, name, new)
        return new

    def _decode_per_level_predictions(
        self,
        anchors: Boxes,
        pred_scores: torch.Tensor,
        pred_deltas: torch.Tensor,
        score_thresh: float,
        topk_candidates: int,
        image_size: tuple[int, int],
    ) -> Instances:
        """Decode boxes and classification predictions of one feature level.

        Args:
            anchors (Boxes): the R anchors of the level.
            pred_scores (Tensor[R, K]): class scores.
            pred_deltas (Tensor[R, 4]): box deltas.
            score_thresh (float): keep the (anchor, class) pairs scoring above it.
            topk_candidates (int): then keep at most this many of the best.
            image_size (tuple[int, int]): the (height, width) of the image.

        Returns:
            Instances: "pred_boxes", "scores", "pred_classes".
        """
        keep_idxs = pred_scores > score_thresh
        pred_scores = pred_scores[keep_idxs]
        topk_idxs = torch.nonzero(keep_idxs)  # Kx2
        num_topk = min(topk_idxs.shape[0], topk_candidates)
        pred_scores, idxs = pred_scores.topk(num_topk)
        topk_idxs = topk_idxs[idxs]
        anchor_idxs, classes_idxs = topk_idxs.unbind(dim=1)
        pred_boxes = self.box2box_transform.apply_deltas(
            pred_deltas[anchor_idxs], anchors.tensor[anchor_idxs]
        )
        return Instances(
            image_size, pred_boxes=Boxes(pred_boxes), scores=pred_scores, pred_classes=classes_idxs
        )

    def _decode_multi_level_predictions(
        self,
        anchors: list[Boxes],
        pred_scores: list[torch.Tensor],
        pred_deltas: list[torch.Tensor],
        score_thresh: float,
        topk_candidates: int,
        image_size: tuple[int, int],
    ) -> Instances:
        """Run :meth:`_decode_per_level_predictions` for all feature levels and concat."""
        predictions = [
            self._decode_per_level_predictions(
                anchors_i, box_cls_i, box_reg_i, score_thresh, topk_candidates, image_size
            )
            for box_cls_i, box_reg_i, anchors_i in zip(pred_scores, pred_deltas, anchors)
        ]
        return Instances.cat(predictions)
