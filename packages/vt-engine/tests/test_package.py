from importlib.metadata import version

import vt_engine


def test_version_matches_distribution_metadata():
    assert vt_engine.__version__ == version("vt-engine")


def test_public_names_exist():
    for name in vt_engine.__all__:
        assert hasattr(vt_engine, name), name
