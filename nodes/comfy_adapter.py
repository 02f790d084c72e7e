"""Everything this pack takes from ComfyUI, in one place.

Inside ComfyUI these use its device choice, progress bar and Cancel button;
without ComfyUI (tests, scripts) they fall back to plain torch behaviour, so the
nodes import and run anywhere.
"""

from __future__ import annotations

import torch

try:  # pragma: no cover - exercised inside a real ComfyUI
    import comfy.model_management as _mm
    import comfy.utils as _comfy_utils
except ImportError:
    _mm = None
    _comfy_utils = None


def compute_device() -> torch.device:
    """Where the work runs: ComfyUI's device, else CUDA when present, else the CPU."""
    if _mm is not None:
        return _mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel."""
    if _mm is not None:
        _mm.throw_exception_if_processing_interrupted()


class Progress:
    """A progress bar in ComfyUI's UI; each tick also honours Cancel."""

    def __init__(self, total: int):
        self.total = max(1, int(total))
        self._bar = _comfy_utils.ProgressBar(self.total) if _comfy_utils is not None else None
        self.done = 0

    def __call__(self, done: int, total: int | None = None) -> None:
        """Report absolute progress (the stereo_core callback signature)."""
        check_interrupted()
        if total is not None:
            self.total = max(1, int(total))
        self.done = min(int(done), self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total)
