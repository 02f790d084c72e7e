"""Occlusion mask refinement: threshold, dilation, feathering."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from .errors import StereoInputError
from .frames import DEFAULT_BATCH_FRAMES, check_mask, frame_batches


def refine_mask(
    mask: torch.Tensor,
    threshold: float = 0.0,
    dilate: int = 0,
    feather: float = 0.0,
    batch: int = DEFAULT_BATCH_FRAMES,
) -> torch.Tensor:
    """Refine a hole mask [T, H, W] (1 = hole).

    threshold > 0 makes it binary (1 where mask > threshold); dilate grows holes by
    that many pixels (square neighbourhood), so the inpainter also repaints the
    stretched pixels at hole borders; feather (pixels, the Gaussian sigma) adds a
    soft ramp outside the holes while keeping them fully 1.
    """
    mask = check_mask(mask, "mask")
    if not 0.0 <= threshold < 1.0:
        raise StereoInputError(f"threshold must be in [0, 1), got {threshold}; 0 keeps the soft mask.")
    if dilate < 0 or feather < 0:
        raise StereoInputError(f"dilate and feather must be >= 0, got dilate={dilate}, feather={feather}.")
    out = torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
    for frames in frame_batches(mask.shape[0], batch):
        holes = mask[frames].float().unsqueeze(1)
        if threshold > 0:
            holes = (holes > threshold).float()
        if dilate > 0:
            holes = F.max_pool2d(holes, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
        if feather > 0:
            radius = max(1, int(3 * feather + 0.5))
            blurred = gaussian_blur2d(holes, (2 * radius + 1, 2 * radius + 1), (feather, feather), border_type="replicate")
            holes = torch.maximum(holes, blurred)
        out[frames] = holes[:, 0].clamp_(0.0, 1.0)
    return out
