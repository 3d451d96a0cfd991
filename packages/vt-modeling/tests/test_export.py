"""torch.export of detector inference with fixed-size outputs (ExportableDetector)."""

import pytest
import torch

from vt_modeling import ExportableDetector, export_detector, get_cfg
from vt_modeling.registries import build_model

IMAGE_SIZE = (3, 128, 160)


def eager_dense_detections(model, image):
    with torch.no_grad():
        images = model.preprocess_image([{"image": image}])
        features = model.backbone(images.tensor)
        features = [features[f] for f in model.head_in_features]
        (instances,) = model.forward_inference(images, features, model.head(features))
    return instances


def assert_matches_eager(outputs, instances, max_detections):
    boxes, scores, classes, *masks, num_valid = outputs
    n = min(len(instances), max_detections)
    assert num_valid.dtype == torch.int64 and int(num_valid) == n
    assert boxes.shape == (max_detections, 4) and scores.shape == (max_detections,)
    assert classes.shape == (max_detections,) and classes.dtype == torch.int64
    torch.testing.assert_close(boxes[:n], instances.pred_boxes.tensor[:n], rtol=0, atol=0)
    torch.testing.assert_close(scores[:n], instances.scores[:n], rtol=0, atol=0)
    torch.testing.assert_close(classes[:n], instances.pred_classes[:n], rtol=0, atol=0)
    padding = [boxes[n:], scores[n:], classes[n:]]
    if masks:
        (masks,) = masks
        m = instances.pred_masks.shape[-1]
        assert masks.shape == (max_detections, m, m)
        torch.testing.assert_close(masks[:n], instances.pred_masks[:n, 0], rtol=0, atol=0)
        padding.append(masks[n:])
    assert all(bool((x == 0).all()) for x in padding)


def test_exported_dense_detector_gives_the_eager_detections(tiny_dense_detector):
    model = tiny_dense_detector
    torch.manual_seed(1)
    image = torch.rand(IMAGE_SIZE) * 255
    program = export_detector(model, image)
    for img in [image, torch.rand(IMAGE_SIZE) * 255]:
        instances = eager_dense_detections(model, img)
        assert len(instances) > 0
        assert_matches_eager(program.module()(img), instances, model.max_detections_per_image)
    short = ExportableDetector(model, max_detections=7)
    with torch.no_grad():
        outputs = short(image)
    assert_matches_eager(outputs, eager_dense_detections(model, image), 7)


def test_exported_mask_rcnn_gives_the_eager_detections(tiny_mask_rcnn):
    model = tiny_mask_rcnn
    torch.manual_seed(2)
    image = torch.rand(IMAGE_SIZE) * 255
    program = export_detector(model, image, max_detections=50)
    for img in [image, torch.rand(IMAGE_SIZE) * 255]:
        with torch.no_grad():
            (instances,) = model.inference([{"image": img}], do_postprocess=False)
        assert len(instances) > 0
        outputs = program.module()(img)
        assert len(outputs) == 5
        assert_matches_eager(outputs, instances, 50)


def test_fewer_detections_than_rows_are_padded(tiny_mask_rcnn):
    model = tiny_mask_rcnn
    predictor = model.roi_heads.box_predictor
    image = torch.rand(IMAGE_SIZE) * 255
    with torch.no_grad():
        (instances,) = model.inference([{"image": image}], do_postprocess=False)
    # A threshold between the scores keeps some of the detections only.
    thresh = float(instances.scores[len(instances) // 3])
    old = predictor.test_score_thresh
    predictor.test_score_thresh = thresh
    try:
        with torch.no_grad():
            (instances,) = model.inference([{"image": image}], do_postprocess=False)
            outputs = ExportableDetector(model)(image)
    finally:
        predictor.test_score_thresh = old
    assert 0 < len(instances) < 100
    assert_matches_eager(outputs, instances, 100)


def test_bad_arguments(tiny_mask_rcnn):
    with pytest.raises(TypeError, match="model"):
        ExportableDetector(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="max_detections"):
        ExportableDetector(tiny_mask_rcnn, max_detections=0)
    with pytest.raises(ValueError, match="image"):
        ExportableDetector(tiny_mask_rcnn)(torch.rand(1, 3, 64, 64))
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    c4 = build_model(cfg)  # Res5ROIHeads
    with pytest.raises(TypeError, match="StandardROIHeads"):
        ExportableDetector(c4)
    with pytest.raises(ValueError, match="eval mode"):
        export_detector(c4.train(), torch.rand(IMAGE_SIZE))
