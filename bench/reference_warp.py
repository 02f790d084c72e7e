"""A straightforward vectorised transcription of the reference warp (ALGORITHM.md 1b).

The yardstick for bench_warp.py: one stacked horizontal splat of
[image * w, w, ones] with w = 1.414 ** (d - d_min), including the reference
kernel's border rule (a sample is dropped unless all four neighbours are inside).
"""

import torch


def reference_forward_warp(image: torch.Tensor, disparity: torch.Tensor, eps: float = 1e-6):
    """image [B, C, H, W], disparity [B, 1, H, W] -> (warped [B, C, H, W], occlusion [B, 1, H, W])."""
    batch, channels, height, width = image.shape
    weight = 1.414 ** (disparity - disparity.min())
    stacked = torch.cat([image * weight, weight, torch.ones_like(weight)], dim=1)

    target_x = torch.arange(width, device=image.device, dtype=image.dtype) - disparity
    left = torch.floor(target_x)
    frac = target_x - left
    left = left.long()
    row = torch.arange(height, device=image.device).view(1, 1, height, 1)
    keep = (left >= 0) & (left + 1 < width) & (row + 1 < height)

    flat_left = (row * width + left.clamp(0, width - 2)).view(batch, 1, -1).expand(-1, channels + 2, -1)
    sums = torch.zeros(batch, channels + 2, height * width, device=image.device, dtype=image.dtype)
    sums.scatter_add_(2, flat_left, (stacked * (1 - frac) * keep).view(batch, channels + 2, -1))
    sums.scatter_add_(2, flat_left + 1, (stacked * frac * keep).view(batch, channels + 2, -1))
    sums = sums.view(batch, channels + 2, height, width)

    warped = sums[:, :channels] / sums[:, channels : channels + 1].clamp(min=eps)
    occlusion = 1.0 - sums[:, channels + 1 :].clamp(0.0, 1.0)
    return warped, occlusion
