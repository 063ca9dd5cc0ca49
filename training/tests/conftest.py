import os
import sys
from pathlib import Path

import pytest
import torch

TRAINING = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TRAINING))
torch.set_num_threads(1)

from busi_train import data  # noqa: E402


@pytest.fixture(scope="session")
def busi_root():
    root = data.data_root()
    if not (root / "normal").is_dir():
        pytest.skip(f"BUSI images not found at {root} (set BUSI_DATA)")
    return root


def tool(env_name):
    """Path of a C++ tool handed over by CMake in an environment variable, or None."""
    path = os.environ.get(env_name)
    return path if path and Path(path).is_file() else None
