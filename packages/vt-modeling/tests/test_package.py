from importlib.metadata import version

import vt_modeling


def test_version_matches_distribution_metadata():
    assert vt_modeling.__version__ == version("vt-modeling")


def test_public_names_exist():
    for name in vt_modeling.__all__:
        assert hasattr(vt_modeling, name), name
