"""Per-pixel loops written from ALGORITHM.md, stage 1b: slow, obvious, independent.

reference_quirk=True reproduces the published CUDA kernel's border rule (a sample
is dropped unless all four bilinear neighbours are inside the frame); False drops
per neighbour, as this pack does.
"""

import math

import torch


def splat_loops(image, disparity, reference_quirk=False, eps=1e-6):
    """image [T, H, W, C], disparity [T, H, W] (float64 math) -> (warped, occlusion)."""
    frames, height, width, channels = image.shape
    image = image.double()
    disparity = disparity.double()
    d_min = float(disparity.min())
    num = torch.zeros(frames, height, width, channels, dtype=torch.float64)
    den = torch.zeros(frames, height, width, dtype=torch.float64)
    cov = torch.zeros(frames, height, width, dtype=torch.float64)
    for t in range(frames):
        for y in range(height):
            for x in range(width):
                d = float(disparity[t, y, x])
                weight = 1.414 ** (d - d_min)
                target = x - d
                left = math.floor(target)
                frac = target - left
                if reference_quirk and not (left >= 0 and left + 1 < width and y + 1 < height):
                    continue
                for nx, share in ((left, 1.0 - frac), (left + 1, frac)):
                    if 0 <= nx < width:
                        num[t, y, nx] += image[t, y, x] * weight * share
                        den[t, y, nx] += weight * share
                        cov[t, y, nx] += share
    warped = num / den.clamp(min=eps).unsqueeze(-1)
    occlusion = 1.0 - cov.clamp(0.0, 1.0)
    return warped, occlusion
