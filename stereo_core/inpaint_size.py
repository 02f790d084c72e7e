"""Inpainting at a working size, the result at full size.

The reference runs its whole pipeline at most `max_res` (1024) on the longest side. We keep the
full frame, but inpainting all of it at full size is 5 times the reference's UNet work at 1080p
and 20 times at 4K, for holes that cover a few percent of the frame. So above the working size the
warped view and its hole mask go down to the working size (DepthCrafter's rounding: sides scaled
by max_res / longest side, then rounded to multiples of 64), are inpainted there, and the model's
output comes back up and replaces the full-resolution warp only inside the holes, grown by one
working-size pixel and feathered. Outside that region the right eye is the full-resolution warp,
exactly.

What it does to a 4K source (3840x2160): the model works at 1024x576, 3.75 times smaller per
side (14 times fewer pixels); the holes' content is upsampled 3.75 times, so it is softer than the
4K pixels around it (the reference's whole right eye is that soft); every pixel farther than
4 px + the feather ramp (3 sigma, 9 px) from a hole is the 4K warp.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .depthcrafter import working_size
from .frames import resize_frames
from .mask import refine_mask

HOLE_THRESHOLD = 0.5  # the model's own: mask values >= 0.5 are holes (see _Denoiser)


def inpaint_size(height: int, width: int, max_res: int) -> tuple[int, int]:
    """The size the model inpaints a height x width frame at: the frame's own at or below max_res
    (0: always), else the reference's working size."""
    if max_res == 0 or max(height, width) <= max_res:
        return height, width
    return working_size(height, width, max_res)


def holes_of(mask: torch.Tensor) -> torch.Tensor:
    """The binary holes the model fills, of a soft mask [..., H, W]."""
    return (mask >= HOLE_THRESHOLD).float()


def has_holes(mask: torch.Tensor) -> bool:
    return bool((mask >= HOLE_THRESHOLD).any())


def shrink_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A mask [n, H, W] at `size`, binary: a working-size pixel is a hole where any full-size hole pixel
    falls in it (an average would let thin holes vanish, and the composite would then paste a hole-less
    re-rendering over them). The mask itself at its own size."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    covered = F.interpolate(holes_of(mask).unsqueeze(1), size=size, mode="area")[:, 0]
    return (covered > 0).float()


def shrink_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Frames [n, H, W, 3] at `size` (anti-aliased bilinear); a fresh tensor either way."""
    resized = resize_frames(frames.float(), *size)
    return resized.clone() if resized is frames else resized


def composite_blend(mask: torch.Tensor, working: tuple[int, int], feather: float) -> torch.Tensor:
    """Weight [n, H, W] of the upsampled model output in the full-size right eye: 1 on the holes grown by
    one working-size pixel (what the working-size mask covered around them), a Gaussian ramp of sigma
    `feather` beyond, and exactly 0 farther than `composite_reach` pixels from a hole."""
    return refine_mask(holes_of(mask), dilate=_grow(mask.shape[-2:], working), feather=feather)


def composite_reach(size: tuple[int, int], working: tuple[int, int], feather: float) -> int:
    """How far (pixels, square neighbourhood) past a hole the composite may change the warp."""
    return _grow(size, working) + (max(1, int(3 * feather + 0.5)) if feather > 0 else 0)


def _grow(size, working) -> int:
    return math.ceil(max(size[0] / working[0], size[1] / working[1]))


def composite(warped: torch.Tensor, inpainted: torch.Tensor, mask: torch.Tensor, working: tuple[int, int],
              feather: float) -> torch.Tensor:
    """The model's output `inpainted` [n, h, w, 3] (at the working size, or already upsampled) in the
    full-size warp [n, H, W, 3] inside the grown, feathered holes of `mask` [n, H, W]; the warp itself,
    exactly, elsewhere."""
    height, width = warped.shape[1:3]
    blend = composite_blend(mask, working, feather).unsqueeze(-1)
    upsampled = resize_frames(inpainted.float(), height, width)
    warped = warped.float()
    return torch.where(blend > 0, torch.lerp(warped, upsampled, blend), warped)
