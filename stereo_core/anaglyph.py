"""Red/cyan anaglyphs from a stereo pair.

Each mode, as output = L @ left + R @ right per pixel (rows = output R, G, B), and its source:
- color: L = [[1,0,0],0,0], R = [0,[0,1,0],[0,0,1]]: red from the left eye, green and blue from the
  right (the reference's anaglyph; "color anaglyph" in P. Wimmer, "Anaglyph Methods Comparison",
  3dtv.at/Knowhow/AnaglyphComparison_en.aspx).
- half-color: L's red row = BT.601 luma [0.299, 0.587, 0.114] (rec. 601 as kornia's rgb_to_grayscale),
  R as color (Wimmer's "half color anaglyph", same page).
- gray: both eyes reduced to BT.601 luma; red from the left, green and blue from the right (Wimmer's
  "gray anaglyph", same page).
- dubois: E. Dubois' least-squares projection for red/cyan glasses, applied in linear light
  (E. Dubois, "A projection method to generate anaglyph stereo images", ICASSP 2001, and his table of
  red/cyan matrices at site.uottawa.ca/~edubois/anaglyph/).
- wimmer: Wimmer's "optimized anaglyph" (same 3dtv.at page): L's red row = [0, 0.7, 0.3] (the left
  eye's green and blue, so red objects do not flash in one eye), R as color, then the red channel
  brightened with gamma 1.5 (red = red ** (1 / 1.5)), as that page says it applies.
"""

from __future__ import annotations

import torch
from kornia.color import linear_rgb_to_rgb, rgb_to_grayscale, rgb_to_linear_rgb

from .errors import StereoInputError
from .frames import DEFAULT_BATCH_FRAMES, check_clip, check_frame_counts, check_same_size, frame_batches

MODES = ("color", "half-color", "gray", "dubois", "wimmer")

# Dubois' least-squares red/cyan projection (for linear RGB), rows = output R, G, B.
_DUBOIS_LEFT = torch.tensor([[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]])
_DUBOIS_RIGHT = torch.tensor([[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]])
# Wimmer's optimized anaglyph: the red row of the left-eye matrix, and the gamma that brightens the result.
_WIMMER_RED = (0.0, 0.7, 0.3)
_WIMMER_RED_GAMMA = 1.5


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise StereoInputError(f"anaglyph mode must be one of {MODES}, got {mode!r}.")


def anaglyph(
    left: torch.Tensor, right: torch.Tensor, mode: str = "color", batch: int = DEFAULT_BATCH_FRAMES
) -> torch.Tensor:
    """Red/cyan anaglyph [T, H, W, 3].

    color: red from the left eye, green and blue from the right (the reference);
    half-color: the left eye's luma in red (less retinal rivalry on red objects);
    gray: luma of each eye (no colour, least ghosting); dubois: Dubois'
    least-squares projection computed in linear light (best colour, least ghosting);
    wimmer: Wimmer's optimized anaglyph (red from the left eye's green and blue,
    gamma-brightened: almost no retinal rivalry, red shades lost).
    """
    check_mode(mode)
    left = check_clip(left, "left")
    right = check_clip(right, "right")
    check_frame_counts(left.shape[0], right.shape[0], "left", "right", broadcast_one=False)
    check_same_size(left, right, "left", "right")
    out = torch.empty_like(left)
    for frames in frame_batches(left.shape[0], batch):
        out[frames] = _anaglyph_batch(left[frames].float(), right[frames].float(), mode).to(out.dtype)
    return out


def _anaglyph_batch(left: torch.Tensor, right: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "dubois":
        left_lin = rgb_to_linear_rgb(left.permute(0, 3, 1, 2).clamp(0, 1))
        right_lin = rgb_to_linear_rgb(right.permute(0, 3, 1, 2).clamp(0, 1))
        mixed = torch.einsum("oc,bchw->bohw", _DUBOIS_LEFT.to(left.device), left_lin)
        mixed += torch.einsum("oc,bchw->bohw", _DUBOIS_RIGHT.to(left.device), right_lin)
        return linear_rgb_to_rgb(mixed.clamp(0, 1)).permute(0, 2, 3, 1)
    out = right.clone()
    if mode == "wimmer":
        red = sum(weight * left[..., channel] for channel, weight in enumerate(_WIMMER_RED))
        out[..., 0] = red.clamp(0, 1) ** (1.0 / _WIMMER_RED_GAMMA)
        return out
    if mode == "color":
        out[..., 0] = left[..., 0]
        return out
    out[..., 0] = _luma(left)
    if mode == "gray":
        out[..., 1:] = _luma(right).unsqueeze(-1)
    return out


def _luma(frames: torch.Tensor) -> torch.Tensor:
    return rgb_to_grayscale(frames.permute(0, 3, 1, 2))[:, 0]
