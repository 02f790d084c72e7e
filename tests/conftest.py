"""Shared fixtures: the pack loaded as ComfyUI loads it, and small synthetic clips."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

torch.set_num_threads(min(2, torch.get_num_threads()))


def load_pack():
    """Import the repository as a custom-node package, exactly as ComfyUI does."""
    name = "sc3d_pack_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pack():
    return load_pack()


@pytest.fixture(scope="session")
def nodes(pack):
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture
def clip():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(4, 24, 40, 3, generator=generator)


@pytest.fixture
def depth_clip():
    """Smooth depth with a near square: collisions, holes and sub-pixel shares."""
    frames, height, width = 4, 24, 40
    x = torch.linspace(0, 1, width).view(1, 1, width)
    depth = (0.3 * x).expand(frames, height, width).clone()
    depth[:, 6:18, 14:26] = 0.9
    return depth.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()
