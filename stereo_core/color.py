"""Colour consistency between the eyes: match one clip's colour distribution to another's.

Reinhard-style transfer in CIELAB (kornia): per channel, the corrected clip gets the
reference's mean and standard deviation. Statistics can be pooled over the whole clip,
over fixed groups of frames (e.g. the inpainter's chunks) or per frame, and can skip
pixels marked in a mask (the inpainted holes, whose colours are the ones in question).
"""

from __future__ import annotations

import kornia
import torch

from .errors import StereoInputError
from .frames import check_clip, check_frame_counts, check_mask, check_same_size

MODES = ("off", "clip", "chunk", "frame")


def _lab_stats(lab: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted per-channel mean and std of Lab frames [n, 3, H, W] (weights [n, 1, H, W])."""
    total = weights.sum().clamp_min(1e-6)
    mean = (lab * weights).sum(dim=(0, 2, 3)) / total
    var = (((lab - mean.view(1, 3, 1, 1)) ** 2) * weights).sum(dim=(0, 2, 3)) / total
    return mean, var.clamp_min(1e-8).sqrt()


def match_colors(
    image: torch.Tensor,
    reference: torch.Tensor,
    mask: torch.Tensor | None = None,
    mode: str = "clip",
    group: int = 23,
    strength: float = 1.0,
) -> torch.Tensor:
    """`image` [T, H, W, 3] with the colour statistics of `reference` (same shape).

    mask [T, H, W]: 1 = ignore the pixel in both statistics (e.g. inpainted holes).
    mode: clip (one transform), chunk (one per `group` frames), frame (one per frame), off.
    """
    if mode not in MODES:
        raise StereoInputError(f"color match mode '{mode}' is not one of {', '.join(MODES)}.")
    image = check_clip(image, "image")
    reference = check_clip(reference, "reference")
    check_frame_counts(image.shape[0], reference.shape[0], "image", "reference", broadcast_one=False)
    check_same_size(image, reference, "image", "reference")
    if mask is not None:
        mask = check_mask(mask, "mask")
        check_frame_counts(image.shape[0], mask.shape[0], "image", "mask", broadcast_one=False)
        check_same_size(image, mask.unsqueeze(-1), "image", "mask")
    if mode == "off" or strength == 0:
        return image

    frames = image.shape[0]
    size = {"clip": frames, "chunk": max(1, group), "frame": 1}[mode]
    result = torch.empty_like(image)
    for start in range(0, frames, size):
        part = slice(start, min(start + size, frames))
        lab = kornia.color.rgb_to_lab(image[part].permute(0, 3, 1, 2).float().clamp(0, 1))
        ref_lab = kornia.color.rgb_to_lab(reference[part].permute(0, 3, 1, 2).float().clamp(0, 1))
        keep = torch.ones_like(lab[:, :1]) if mask is None else (1 - mask[part].float().clamp(0, 1)).unsqueeze(1)
        mean, std = _lab_stats(lab, keep)
        ref_mean, ref_std = _lab_stats(ref_lab, keep)
        view = (1, 3, 1, 1)
        transferred = (lab - mean.view(view)) * (ref_std / std).view(view) + ref_mean.view(view)
        matched = torch.lerp(lab, transferred, strength)
        result[part] = kornia.color.lab_to_rgb(matched, clip=True).permute(0, 2, 3, 1).to(image.dtype)
    return result
