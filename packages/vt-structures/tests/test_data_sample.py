import re

import numpy as np
import pytest
import torch

from vt_structures import BaseDataElement, PixelData, SegDataSample


def test_seed_example():
    data_sample = SegDataSample()
    img_meta = dict(img_shape=(4, 4, 3), pad_shape=(4, 4, 3))
    gt_segmentations = PixelData(metainfo=img_meta)
    gt_segmentations.data = torch.randint(0, 2, (1, 4, 4))
    data_sample.gt_sem_seg = gt_segmentations
    assert "img_shape" in data_sample.gt_sem_seg.metainfo_keys()
    assert data_sample.gt_sem_seg.shape == (4, 4)
    text = repr(data_sample)
    assert re.fullmatch(
        r"<SegDataSample\(\n\n    META INFORMATION\n\n    DATA FIELDS\n"
        r"    gt_sem_seg: <PixelData\(\n        \n            META INFORMATION\n"
        r"            (img_shape: \(4, 4, 3\)\n            pad_shape: \(4, 4, 3\)|pad_shape: \(4, 4, 3\)\n            img_shape: \(4, 4, 3\))\n        \n"
        r"            DATA FIELDS\n            data: tensor\(\[\[\[.*\]\]\]\)\n"
        r"        \) at 0x[0-9a-f]+>\n\) at 0x[0-9a-f]+>",
        text,
        flags=re.S,
    ), text

    data_sample = SegDataSample()
    gt_sem_seg = PixelData(**dict(sem_seg=torch.rand(1, 4, 4)))
    data_sample.gt_sem_seg = gt_sem_seg
    assert "gt_sem_seg" in data_sample
    assert "sem_seg" in data_sample.gt_sem_seg


def test_fields_and_keys():
    s = SegDataSample(metainfo=dict(img_shape=(4, 5), ori_shape=(8, 10)))
    s.seg_logits = PixelData(data=torch.rand(3, 4, 5))
    s.pred_sem_seg = PixelData(data=torch.zeros(1, 4, 5, dtype=torch.long))
    assert sorted(s.keys()) == ["pred_sem_seg", "seg_logits"]
    assert sorted(s.metainfo_keys()) == ["img_shape", "ori_shape"]
    assert s.metainfo == {"img_shape": (4, 5), "ori_shape": (8, 10)}
    assert "img_shape" in s and "seg_logits" in s and "gt_sem_seg" not in s
    assert s.get("gt_sem_seg") is None and s.get("gt_sem_seg", 3) == 3
    assert sorted(s.all_keys()) == ["img_shape", "ori_shape", "pred_sem_seg", "seg_logits"]
    del s.seg_logits
    assert "seg_logits" not in s and s.keys() == ["pred_sem_seg"]
    popped = s.pop("pred_sem_seg")
    assert isinstance(popped, PixelData) and "pred_sem_seg" not in s
    assert s.pop("nothing", None) is None
    with pytest.raises(KeyError, match="nothing"):
        s.pop("nothing")
    assert s.pop("img_shape") == (4, 5) and "img_shape" not in s


def test_type_and_kind_errors():
    s = SegDataSample(metainfo=dict(img_shape=(4, 4)))
    with pytest.raises(TypeError, match="_gt_sem_seg"):
        s.gt_sem_seg = torch.zeros(1, 4, 4)
    assert "gt_sem_seg" not in s  # the refused value leaves no field behind
    with pytest.raises(AttributeError, match="already a metainfo field"):
        s.img_shape = (5, 5)
    s.score = torch.tensor(1.0)
    with pytest.raises(AttributeError, match="already a data field"):
        s.set_metainfo(dict(score=1))
    with pytest.raises(AttributeError, match="private"):
        s._data_fields = set()
    with pytest.raises(TypeError, match="metainfo"):
        SegDataSample(metainfo=[1])


def test_pixel_data():
    p = PixelData(metainfo=dict(img_shape=(3, 5)))
    assert p.shape is None
    with pytest.warns(UserWarning, match=r"\(1, H, W\)"):
        p.mask = np.zeros((3, 5), dtype=bool)
    assert p.mask.shape == (1, 3, 5) and p.shape == (3, 5)
    p.logits = torch.rand(4, 3, 5)
    with pytest.raises(ValueError, match=r"differ from the PixelData's \(3, 5\)"):
        p.other = torch.rand(1, 4, 5)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(C, H, W\)"):
        p.other = torch.rand(1, 1, 3, 5)
    with pytest.raises(TypeError, match=r"torch\.Tensor or np\.ndarray"):
        p.other = [1, 2]
    crop = p[1:3, 2:]
    assert crop.shape == (2, 3) and crop.logits.shape == (4, 2, 3)
    assert torch.equal(crop.logits, p.logits[:, 1:3, 2:]) and crop.metainfo == p.metainfo
    one = p[1, -1]
    assert one.shape == (1, 1) and one.logits[:, 0, 0].tolist() == p.logits[:, 1, -1].tolist()
    with pytest.raises(TypeError, match="item"):
        p[0]


def test_to_numpy_clone_new():
    s = SegDataSample(metainfo=dict(img_shape=(2, 2)))
    s.gt_sem_seg = PixelData(data=torch.ones(1, 2, 2, dtype=torch.int32), metainfo=dict(a=1))
    moved = s.to(torch.float64)
    assert moved is not s and moved.gt_sem_seg.data.dtype == torch.float64
    assert moved.metainfo == s.metainfo and s.gt_sem_seg.data.dtype == torch.int32
    n = s.numpy()
    assert isinstance(n.gt_sem_seg.data, np.ndarray) and n.gt_sem_seg.metainfo == {"a": 1}
    assert isinstance(n.to_tensor().gt_sem_seg.data, torch.Tensor)
    assert s.cpu().detach().gt_sem_seg.data.dtype == torch.int32
    c = s.clone()
    assert c.gt_sem_seg is s.gt_sem_seg and c.metainfo == s.metainfo
    fresh = s.new(metainfo=dict(img_shape=(9, 9)))
    assert fresh.img_shape == (9, 9) and "gt_sem_seg" in fresh
    d = s.to_dict()
    assert d["img_shape"] == (2, 2) and d["gt_sem_seg"]["a"] == 1
    e = BaseDataElement()
    e.update(s)
    assert e.img_shape == (2, 2) and "gt_sem_seg" in e
    meta = dict(shape=[1, 2])
    s2 = SegDataSample(metainfo=meta)
    meta["shape"].append(3)
    assert s2.shape == [1, 2]  # metainfo is deep-copied
