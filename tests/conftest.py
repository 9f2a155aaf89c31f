import os
import sys

# tests/variants.py is imported by name from every test module.
sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The native kernels (deberta_pt/native.py) are built afresh for each test run, into a folder removed at its end.
if "DEBERTA_ZOO_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["DEBERTA_ZOO_CACHE"] = tempfile.mkdtemp(prefix="deberta-zoo-native-")
    atexit.register(shutil.rmtree, os.environ["DEBERTA_ZOO_CACHE"], True)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "slow: 10 s or more on a 2-core machine (compilers, subprocesses)")


def pytest_collection_modifyitems(items) -> None:
    # The slow tests first (in their usual order): with several workers (`make test`), the tests left when one
    # worker runs out are then short ones, not a compile of a minute while the other worker idles.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
