import pytest

from vt_metrics import BaseMetric


class CountMetric(BaseMetric):
    default_prefix = "count"

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return {"n": len(results), "first": results[0] if results else None}


def test_evaluate_truncates_to_size_adds_prefix_and_clears():
    m = CountMetric()
    m.process({}, [1, 2, 3])
    m.process({}, [4])
    assert m.evaluate(3) == {"count/n": 3, "count/first": 1}
    assert m.results == []
    m.process({}, [5])
    assert CountMetric(prefix="val").prefix == "val"
    assert m.evaluate() == {"count/n": 1, "count/first": 5}  # size None: everything


def test_dataset_meta_is_copied_and_arguments_checked():
    meta = {"classes": ["a", "b"]}
    m = CountMetric(output_dir="out", format_only=True)
    m.dataset_meta = meta
    meta["classes"].append("c")
    assert m.dataset_meta == {"classes": ["a", "b"]}
    assert m.output_dir == "out" and m.format_only
    with pytest.raises(ValueError, match="collect_device"):
        CountMetric(collect_device="cuda")
    with pytest.raises(TypeError):
        BaseMetric()  # abstract


def test_torch_tensors_in_results_reach_compute_metrics_on_cpu():
    torch = pytest.importorskip("torch")
    m = CountMetric()
    m.process({}, [{"x": torch.ones(2, requires_grad=True)}])
    out = m.evaluate()
    assert out["count/first"]["x"].device.type == "cpu"
    assert not out["count/first"]["x"].requires_grad
