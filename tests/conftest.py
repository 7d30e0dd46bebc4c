import sys
from pathlib import Path

import pytest

DATA_PREP = Path(__file__).resolve().parents[1] / "data_prep"


@pytest.fixture(scope="session")
def synthetic_set(tmp_path_factory) -> Path:
    """A tiny synthetic Kinetics-format set (4 classes × 4 videos) built by data_prep/make_synthetic.py."""
    sys.path.insert(0, str(DATA_PREP))
    try:
        import make_synthetic
    finally:
        sys.path.remove(str(DATA_PREP))
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic.build(out, classes=4, videos_per_class=4, frames=24, height=48, width=64, progress=False)
    return out
