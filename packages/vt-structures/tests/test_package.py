from importlib.metadata import version

import vt_structures


def test_version_matches_distribution_metadata():
    assert vt_structures.__version__ == version("vt-structures")


def test_public_names_exist():
    for name in vt_structures.__all__:
        assert hasattr(vt_structures, name), name
