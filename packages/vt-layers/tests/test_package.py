from importlib.metadata import version

import vt_layers


def test_version_matches_distribution_metadata():
    assert vt_layers.__version__ == version("vt-layers")


def test_public_names_exist():
    for name in vt_layers.__all__:
        assert hasattr(vt_layers, name), name
