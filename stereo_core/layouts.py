"""Stereo frame layouts: side-by-side, top-bottom, VR180, and the reference's 2x2 splatting grid."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from .errors import StereoInputError
from .frames import DEFAULT_BATCH_FRAMES, check_clip, check_frame_counts, check_same_size, frame_batches, resize_frames

LAYOUTS = ("sbs", "half-sbs", "tb", "half-tb", "vr180")

# Mean adult interpupillary distance (Dodgson 2004: 63 mm); only sets where the eyes converge in VR180.
_IPD_METRES = 0.063
# 4096x2048 is the largest H.264 frame headset decoders play smoothly at 60 fps (DeoVR's encoding guide).
AUTO_EYE_SIZE_CAP = 2048


@dataclass(frozen=True)
class VirtualScreen:
    """The flat screen each eye sees inside a VR180 frame."""

    fov: float = 70.0
    """Horizontal size of the screen as an angle, in degrees (Meta's guide: under 70 is comfortable to watch
    without turning the head)."""
    distance: float = 3.0
    """Metres from the viewer: the eyes converge there, so zero-parallax content sits on the screen.
    0 = at infinity (both eyes' screens in the same place)."""
    eye_size: int = 0
    """Side of each eye's square half-equirectangular image in pixels; 0 = enough to keep the source's detail at
    the screen's centre, at most AUTO_EYE_SIZE_CAP."""

    def validate(self) -> None:
        if not math.isfinite(self.fov) or not 1.0 <= self.fov <= 170.0:
            raise StereoInputError(f"VR180 screen size must be an angle between 1 and 170 degrees, got {self.fov}.")
        if not math.isfinite(self.distance) or self.distance < 0 or 0 < self.distance < 0.1:
            raise StereoInputError(
                f"VR180 screen distance must be 0 (infinity) or at least 0.1 m, got {self.distance}."
            )
        if self.eye_size != 0 and not 16 <= self.eye_size <= 8192:
            raise StereoInputError(f"VR180 eye size must be 0 (auto) or 16..8192 pixels, got {self.eye_size}.")

    def half_width(self) -> float:
        """Half the screen's width divided by its distance."""
        return math.tan(math.radians(self.fov) / 2)

    def eye_pixels(self, source_width: int) -> int:
        if self.eye_size:
            return self.eye_size
        # Equirect: eye_size pixels per pi radians; the source: width pixels per 2 * half_width radians at the centre.
        wanted = math.pi * source_width / (2 * self.half_width())
        return int(min(AUTO_EYE_SIZE_CAP, max(16, 16 * math.ceil(wanted / 16))))


def square_pixel_size(height: int, width: int, sample_aspect: float) -> tuple[int, int]:
    """(height, width) that shows a picture of height x width pixels, each `sample_aspect` wide (over its
    height), at the same shape with square pixels: the side the aspect shortens is stretched, so no detail is
    lost."""
    if sample_aspect >= 1:
        return height, max(1, round(width * sample_aspect))
    return max(1, round(height / sample_aspect)), width


def stereo_frame_size(layout: str, height: int, width: int, screen: VirtualScreen = VirtualScreen(),
                      resample_aspect: float = 1.0) -> tuple[int, int]:
    """(height, width) of the frame compose_stereo makes from eyes of height x width; resample_aspect: the eyes'
    pixel aspect where they are resampled to square pixels (compose_stereo's square_pixels)."""
    if layout == "vr180":
        size = screen.eye_pixels(width)
        return size, 2 * size
    height, width = square_pixel_size(height, width, resample_aspect)
    return {"sbs": (height, 2 * width), "half-sbs": (height, 2 * (width // 2)), "tb": (2 * height, width),
            "half-tb": (2 * (height // 2), width)}[layout]


def check_layout(layout: str, swap: bool = False) -> None:
    """Refuse a layout compose_stereo does not make (or an eye swap it does not apply to)."""
    if layout not in LAYOUTS:
        raise StereoInputError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    if layout == "vr180" and swap:
        raise StereoInputError(
            "swap_eyes is for cross-eyed viewing of flat layouts; a VR180 frame is for headsets, which need "
            "the left eye on the left. Turn swap off (or choose sbs for cross-eyed viewing)."
        )


def compose_stereo(
    left: torch.Tensor,
    right: torch.Tensor,
    layout: str = "sbs",
    swap: bool = False,
    batch: int = DEFAULT_BATCH_FRAMES,
    screen: VirtualScreen = VirtualScreen(),
    sample_aspect: float = 1.0,
    square_pixels: bool = False,
) -> torch.Tensor:
    """Pack two eyes into one frame.

    sbs: [left | right] at full width (the reference); tb: left above right;
    half-*: each eye squeezed to half width/height (anti-aliased), so the frame
    keeps the source size (what 3D TVs expect); swap puts the right eye first
    (cross-eyed viewing). vr180: each eye as a flat screen (`screen`) inside a
    180-degree half-equirectangular square, side by side (width = 2 x height),
    black around it. Frames are independent, so any chunk of a clip can be
    composed on its own. sample_aspect: how wide the eyes' pixels are shown
    (over their height); the flat layouts keep it (the frame is shown with
    it), vr180 places the picture on its screen at its displayed shape.
    square_pixels: the flat layouts resample each eye to square pixels at its
    displayed shape instead (for a file that cannot carry the aspect).
    """
    check_layout(layout, swap)
    left = check_clip(left, "left")
    right = check_clip(right, "right")
    check_frame_counts(left.shape[0], right.shape[0], "left", "right", broadcast_one=False)
    check_same_size(left, right, "left", "right")
    if layout == "vr180":
        return _compose_vr180(left, right, screen, batch, float(sample_aspect))
    first, second = (right, left) if swap else (left, right)
    frames, height, width, channels = left.shape
    if layout.startswith("half") and min(height, width) < 2:
        raise StereoInputError(f"half layouts need frames of at least 2x2 pixels, got {width}x{height}.")
    out_h, out_w = stereo_frame_size(layout, height, width, resample_aspect=sample_aspect if square_pixels else 1)
    horizontal = layout.endswith("sbs")
    eye_h, eye_w = (out_h, out_w // 2) if horizontal else (out_h // 2, out_w)
    out = torch.empty((frames, out_h, out_w, channels), dtype=left.dtype, device=left.device)
    for batch_slice in frame_batches(frames, batch):
        a = resize_frames(first[batch_slice], eye_h, eye_w).to(out.dtype)
        b = resize_frames(second[batch_slice], eye_h, eye_w).to(out.dtype)
        if horizontal:
            out[batch_slice, :, :eye_w], out[batch_slice, :, eye_w:] = a, b
        else:
            out[batch_slice, :eye_h], out[batch_slice, eye_h:] = a, b
    return out


def _compose_vr180(left: torch.Tensor, right: torch.Tensor, screen: VirtualScreen, batch: int,
                   sample_aspect: float = 1.0) -> torch.Tensor:
    screen.validate()
    frames, height, width, channels = left.shape
    size = screen.eye_pixels(width)
    # Shrink the source first where it is finer than the frame's pixels, so sampling does not alias.
    pixels_per_radian = size / math.pi
    fit_width = max(2, round(2 * screen.half_width() * pixels_per_radian))
    source_h, source_w = height, width
    if fit_width < width:
        source_w, source_h = fit_width, max(2, round(height * fit_width / width))
    out = torch.zeros((frames, size, 2 * size, channels), dtype=left.dtype, device=left.device)
    for eye, clip in enumerate((left, right)):
        sign = -1 if eye == 0 else 1  # the left eye sits left of centre
        grid, (top, bottom, x0, x1) = _vr180_grid(size, height / (width * sample_aspect), screen, sign,
                                                  str(left.device))
        if grid is None:
            continue
        for batch_slice in frame_batches(frames, batch):
            pictures = resize_frames(clip[batch_slice].float(), source_h, source_w).permute(0, 3, 1, 2)
            sampled = F.grid_sample(pictures, grid.expand(pictures.shape[0], -1, -1, -1), mode="bilinear",
                                    padding_mode="zeros", align_corners=False)
            out[batch_slice, top:bottom, eye * size + x0:eye * size + x1] = sampled.permute(0, 2, 3, 1).to(out.dtype)
    return out


@lru_cache(maxsize=4)
def _vr180_grid(size: int, aspect: float, screen: VirtualScreen, eye_sign: int, device: str):
    """Sampling grid of one eye's screen in its half-equirect square, cropped to the screen's bounding box.

    A pixel's direction (longitude lam, latitude phi) from an eye at x = eye_sign * ipd / 2 meets the screen
    plane (distance D, centred between the eyes) at x = eye_x + D tan(lam), y = D tan(phi) / cos(lam).
    """
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size - 0.5
    longitude = (centres * math.pi).view(1, -1)
    latitude = (-centres * math.pi).view(-1, 1)  # top row looks up
    half_w = screen.half_width()
    half_h = half_w * aspect
    distance = screen.distance
    eye_offset = eye_sign * _IPD_METRES / 2 / distance if distance > 0 else 0.0
    u = (torch.tan(longitude) + eye_offset) / half_w
    v = -(torch.tan(latitude) / torch.cos(longitude)) / half_h
    u, v = u.expand(size, size), v.expand(size, size)
    # Keep a margin of a few source pixels around the screen so its bilinear edge fades to black.
    inside = (u.abs() <= 1.02) & (v.abs() <= 1.02)
    rows = torch.nonzero(inside.any(dim=1)).flatten()
    cols = torch.nonzero(inside.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None, (0, 0, 0, 0)
    top, bottom, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    grid = torch.stack([u[top:bottom, x0:x1], v[top:bottom, x0:x1]], dim=-1).float()
    return grid.unsqueeze(0).to(device), (top, bottom, x0, x1)


def compose_splat_grid(
    left: torch.Tensor, depth_vis: torch.Tensor, occlusion: torch.Tensor, warped: torch.Tensor
) -> torch.Tensor:
    """The reference's stage-1 hand-off frame at twice the size:
    [left | depth visualisation] over [occlusion mask (grey) | warped right view]."""
    left = check_clip(left, "left")
    frames, height, width, _ = left.shape
    tiles = {"depth_vis": check_clip(depth_vis, "depth_vis"), "warped": check_clip(warped, "warped")}
    occlusion = check_clip(occlusion, "occlusion", channels=(1, 3))
    tiles["occlusion"] = occlusion.expand(*occlusion.shape[:3], 3)
    for name, tile in tiles.items():
        check_frame_counts(frames, tile.shape[0], "left", name, broadcast_one=False)
        check_same_size(left, tile, "left", name)
    grid = torch.empty((frames, 2 * height, 2 * width, 3), dtype=left.dtype, device=left.device)
    grid[:, :height, :width] = left
    grid[:, :height, width:] = tiles["depth_vis"]
    grid[:, height:, :width] = tiles["occlusion"]
    grid[:, height:, width:] = tiles["warped"]
    return grid


def split_splat_grid(grid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inverse of compose_splat_grid; also reads grids written by the reference scripts.

    Returns left, depth_vis, warped [T, H, W, 3] and occlusion [T, H, W] (the mean of
    the grey tile's channels, as the reference reads it).
    """
    grid = check_clip(grid, "grid")
    _, full_h, full_w, _ = grid.shape
    if full_h % 2 or full_w % 2:
        raise StereoInputError(
            f"A 2x2 splatting grid has even width and height, but this video is {full_w}x{full_h}. "
            f"Use the grid video exactly as stage 1 wrote it (not resized or cropped)."
        )
    height, width = full_h // 2, full_w // 2
    mask_tile = grid[:, height:, :width]
    _check_mask_tile(mask_tile, full_w, full_h)
    return {
        "left": grid[:, :height, :width],
        "depth_vis": grid[:, :height, width:],
        "occlusion": mask_tile.mean(dim=-1),
        "warped": grid[:, height:, width:],
    }


# Video codecs blur a black/white mask a little; a photo's bottom-left quarter is far from this.
_GREY_TOLERANCE = 0.06
_MAX_MIDTONE_SHARE = 0.25


def _check_mask_tile(mask_tile: torch.Tensor, full_w: int, full_h: int) -> None:
    """A grid's bottom-left tile is the occlusion mask: grey and almost only black or white."""
    sample = mask_tile[:: max(1, mask_tile.shape[0] // 8)].float()  # a few frames say enough
    channel_spread = (sample.amax(dim=-1) - sample.amin(dim=-1)).mean().item()
    grey = sample.mean(dim=-1)
    midtone_share = ((grey > 0.25) & (grey < 0.75)).float().mean().item()
    if channel_spread > _GREY_TOLERANCE or midtone_share > _MAX_MIDTONE_SHARE:
        raise StereoInputError(
            f"This {full_w}x{full_h} video does not look like a 2x2 splatting grid: its bottom-left quarter should "
            f"be the black-and-white occlusion mask, but it is "
            f"{'coloured' if channel_spread > _GREY_TOLERANCE else 'mostly grey tones'}. Load the grid video that "
            f"stage 1 wrote (Splat Grid Compose or the reference's splatting script), not an ordinary or SBS video."
        )
