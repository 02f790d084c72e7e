"""Lets tests use tools/build_workflows.py's node definitions (one reader of INPUT_TYPES / object_info)."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "tools" / "build_workflows.py"
_spec = importlib.util.spec_from_file_location("build_workflows", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

definition = _module.definition
optional_inputs = _module.optional_inputs
has_seed_control = _module.has_seed_control
read_widgets = _module.read_widgets
WORKFLOWS = _module.WORKFLOWS
builder = _module
FRONTEND_ONLY = _module.FRONTEND_ONLY
