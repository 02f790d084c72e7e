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

# One thread, as CI's small runners: timings stay stable and model runs stay cheap.
torch.set_num_threads(1)


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


@pytest.fixture(scope="session")
def model_tree(tmp_path_factory):
    """Tiny random-weight models in the real download layouts (see tiny_models.py)."""
    from tiny_models import build_model_tree

    return build_model_tree(tmp_path_factory.mktemp("models") / "stereocrafter")


@pytest.fixture
def models_dir(model_tree, monkeypatch):
    """Point the pack's model search (the STEREOCRAFTER_MODELS fallback used outside ComfyUI) at the tree."""
    root = model_tree["svd"].parent
    monkeypatch.setenv("STEREOCRAFTER_MODELS", str(root))
    return root


def load_through_node(pack, model_tree, node_type, model_folder):
    """A tiny model loaded through a loader node as a user would (fp32, offload placement)."""
    import os

    old = os.environ.get("STEREOCRAFTER_MODELS")
    os.environ["STEREOCRAFTER_MODELS"] = str(model_tree["svd"].parent)
    try:
        (model,) = pack.NODE_CLASS_MAPPINGS[node_type]().load(
            "stable-video-diffusion-img2vid-xt-1-1", model_folder, "fp32", "offload to CPU between uses")
    finally:
        if old is None:
            os.environ.pop("STEREOCRAFTER_MODELS")
        else:
            os.environ["STEREOCRAFTER_MODELS"] = old
    return model


@pytest.fixture(scope="session")
def depthcrafter_model(model_tree, pack):
    return load_through_node(pack, model_tree, "SC3D_DepthCrafterModelLoader", "DepthCrafter")


@pytest.fixture(scope="session")
def stereocrafter_model(model_tree, pack):
    return load_through_node(pack, model_tree, "SC3D_StereoCrafterModelLoader", "StereoCrafter")


class Cancelled(Exception):
    """What the fake ComfyUI raises when the user presses Cancel."""


@pytest.fixture
def fake_comfy(pack, monkeypatch):
    """ComfyUI's progress bar and model management, recorded: `updates` lists every bar update;
    setting `cancel_after = n` makes the next interrupt check after n updates raise Cancelled."""
    adapter = pack.nodes.comfy_adapter

    class Comfy:
        updates = []
        cancel_after = None

    class FakeBar:
        def __init__(self, total):
            pass

        def update_absolute(self, value, total=None):
            Comfy.updates.append((value, total))

    class FakeModelManagement:
        @staticmethod
        def get_torch_device():
            return torch.device("cpu")

        @staticmethod
        def throw_exception_if_processing_interrupted():
            if Comfy.cancel_after is not None and len(Comfy.updates) >= Comfy.cancel_after:
                raise Cancelled()

    Comfy.model_management = FakeModelManagement
    monkeypatch.setattr(adapter, "_comfy_utils", type("utils", (), {"ProgressBar": FakeBar}))
    monkeypatch.setattr(adapter, "_mm", FakeModelManagement)
    return Comfy
