import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vt_structures import BitMasks, Boxes, Instances, Keypoints, PolygonMasks


def make(n: int, offset: int = 0) -> Instances:
    return Instances(
        (32, 48),
        scores=torch.arange(offset, offset + n, dtype=torch.float32),
        boxes=Boxes(torch.arange(n * 4, dtype=torch.float32).reshape(n, 4) + offset),
        names=[f"obj{offset + i}" for i in range(n)],
        masks=BitMasks(torch.zeros(n, 32, 48, dtype=torch.bool)),
    )


def test_fields_get_set_has_remove():
    inst = Instances((10, 20))
    assert inst.image_size == (10, 20)
    inst.scores = torch.rand(3)
    inst.set("classes", torch.tensor([1, 2, 3]))
    assert inst.has("scores") and inst.has("classes") and not inst.has("boxes")
    assert len(inst) == 3
    assert torch.equal(inst.get("classes"), inst.classes)
    assert list(inst.get_fields()) == ["scores", "classes"]
    inst.remove("scores")
    assert not inst.has("scores")
    with pytest.raises(KeyError, match="scores"):
        inst.remove("scores")
    with pytest.raises(AttributeError, match="Cannot find field 'scores'"):
        _ = inst.scores
    with pytest.raises(AttributeError, match="boxes"):
        inst.get("boxes")


def test_mismatched_field_length_is_refused():
    inst = Instances((10, 20), scores=torch.rand(3))
    with pytest.raises(
        ValueError, match="field 'boxes': adding a field of length 2 to an Instances of length 3"
    ):
        inst.boxes = Boxes(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="field 'labels'"):
        Instances((10, 20), scores=torch.rand(3), labels=torch.zeros(4))
    with pytest.raises(TypeError, match=r"field 'x'.*length"):
        inst.x = 3.0
    with pytest.raises(ValueError, match="image_size"):
        Instances(10)


def test_empty_instances():
    inst = Instances((5, 5))
    with pytest.raises(NotImplementedError, match="Empty Instances"):
        len(inst)
    with pytest.raises(NotImplementedError, match="not iterable"):
        iter(inst)
    assert str(inst) == "Instances(image_height=5, image_width=5, fields=[])"


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 8), data=st.data())
def test_indexing_indexes_every_field(n, data):
    inst = make(n)
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    sub = inst[mask]
    assert len(sub) == int(mask.sum())
    assert torch.equal(sub.scores, inst.scores[mask])
    assert torch.equal(sub.boxes.tensor, inst.boxes.tensor[mask])
    assert sub.names == [name for name, m in zip(inst.names, mask.tolist()) if m]
    assert sub.masks.tensor.shape == (len(sub), 32, 48)
    idx = data.draw(st.lists(st.integers(0, n - 1), max_size=6))
    sub = inst[torch.tensor(idx, dtype=torch.long)]
    assert sub.names == [inst.names[i] for i in idx]
    assert torch.equal(sub.scores, inst.scores[idx])
    i = data.draw(st.integers(-n, n - 1))
    one = inst[i]
    assert (
        len(one) == 1
        and one.names == [inst.names[i]]
        and one.scores.tolist() == [inst.scores[i].item()]
    )
    k = data.draw(st.integers(0, n))
    assert len(inst[k:]) == n - k and inst[:k].names == inst.names[:k]
    cat = Instances.cat([inst[:k], inst[k:]])
    assert torch.equal(cat.scores, inst.scores) and cat.names == inst.names
    assert torch.equal(cat.boxes.tensor, inst.boxes.tensor)
    assert torch.equal(cat.masks.tensor, inst.masks.tensor)


def test_index_errors():
    inst = make(3)
    with pytest.raises(IndexError, match="out of range"):
        inst[3]
    with pytest.raises(IndexError, match="out of range"):
        inst[-4]
    with pytest.raises(IndexError, match=r"bool mask must have shape \(3,\)"):
        inst[torch.tensor([True, False])]


def test_cat_concatenates_each_field_type():
    a, b = make(2), make(3, offset=10)
    a.polys = PolygonMasks([[[0, 0, 1, 0, 1, 1]]] * 2)
    b.polys = PolygonMasks([[[0, 0, 2, 0, 2, 2]]] * 3)
    a.kps = Keypoints(torch.zeros(2, 4, 3))
    b.kps = Keypoints(torch.ones(3, 4, 3))
    c = Instances.cat([a, b])
    assert len(c) == 5 and c.image_size == (32, 48)
    assert c.scores.tolist() == [0, 1, 10, 11, 12]
    assert c.names == ["obj0", "obj1", "obj10", "obj11", "obj12"]
    assert len(c.polys) == 5 and c.polys.polygons[4][0][2] == 2
    assert c.kps.tensor[:2].sum() == 0 and c.kps.tensor[2:].min() == 1
    assert Instances.cat([a]) is a


def test_cat_errors():
    with pytest.raises(ValueError, match="non-empty"):
        Instances.cat([])
    with pytest.raises(ValueError, match="image sizes differ"):
        Instances.cat([make(1), Instances((1, 1), scores=torch.zeros(1))])
    with pytest.raises(ValueError, match="fields differ"):
        Instances.cat([make(1), Instances((32, 48), scores=torch.zeros(1))])
    a = Instances((1, 1), x=torch.zeros(1), weird=range(1))
    with pytest.raises(ValueError, match=r"Unsupported type.*'weird'"):
        Instances.cat([a, a])
    with pytest.raises(TypeError, match="Instances"):
        Instances.cat([make(1), "x"])


def test_to_and_repr():
    inst = make(2)
    moved = inst.to(torch.float64)
    assert moved.scores.dtype == torch.float64 and moved.boxes.tensor.dtype == torch.float64
    assert moved.names == inst.names and moved is not inst
    s = str(inst)
    assert s.startswith(
        "Instances(num_instances=2, image_height=32, image_width=48, fields=[scores: tensor("
    )
    assert "names: ['obj0', 'obj1']" in s and "masks: BitMasks(num_instances=2)" in s


def test_copy_and_pickle():
    import copy
    import pickle

    inst = make(3)
    for clone in (copy.deepcopy(inst), pickle.loads(pickle.dumps(inst))):
        assert clone.image_size == inst.image_size and clone.names == inst.names
        assert torch.equal(clone.boxes.tensor, inst.boxes.tensor)
        assert torch.equal(clone.masks.tensor, inst.masks.tensor)
    assert torch.equal(inst[np.int64(1)].scores, inst.scores[1:2])


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=5))
def test_every_field_must_have_the_same_length(lengths):
    inst = Instances((4, 4))
    for i, n in enumerate(lengths):
        value = torch.zeros(n) if i % 2 else [None] * n
        if n == lengths[0]:
            inst.set(f"f{i}", value)
        else:
            with pytest.raises(ValueError, match=f"field 'f{i}': adding a field of length {n}"):
                inst.set(f"f{i}", value)
    assert len(inst) == lengths[0]
    assert all(len(v) == lengths[0] for v in inst.get_fields().values())
