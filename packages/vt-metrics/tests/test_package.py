from importlib.metadata import version

import vt_metrics


def test_version_matches_distribution_metadata():
    assert vt_metrics.__version__ == version("vt-metrics")


def test_public_names_exist():
    for name in vt_metrics.__all__:
        assert hasattr(vt_metrics, name), name
