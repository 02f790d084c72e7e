"""StereoCrafter stereo inpainting: temporal chunks, spatial tiles in latent space, full frame.

Follows ALGORITHM.md "Stage 2". Differences by design: the frame is padded (edge
replicate) to the model's 64 px grid and cropped back instead of cropped to multiples of
128; clips of any length >= 1 work; guidance exactly 1.0 skips the unconditional pass;
inpainted frames fed to the next chunk stay float instead of 8-bit; an out-of-memory error
retries the chunk with more tiles; optional colour matching and hole-only compositing. Above
`inpaint_max_res` the model works at the reference's working size and its output is composited into
the full-size warp inside the holes only (inpaint_size.py). Work without holes is not sent to the model: a chunk whose new frames have no hole
is the warp itself; a tile without a hole in its region is the VAE's encoding of its frames. Both
still draw the noise the model call would have drawn, so later chunks get the same noise. What a skip
does change: the skipped frames themselves (the warp, or the tile's VAE round trip, instead of the
model's re-rendering of hole-free frames), the tile overlaps blended with a skipped tile, and, where
the next chunk reuses frames of a skipped chunk, those reused frames (the warp instead of the model's
re-rendering of it); nothing else (tests/test_inpaint_size.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .color import MODES as COLOR_MODES
from .color import match_colors
from .errors import StereoInputError
from .frames import check_clip, check_finite, check_frame_counts, check_mask, check_same_size, resize_frames
from .inpaint_size import composite, has_holes, inpaint_size, shrink_frames, shrink_mask
from .mask import refine_mask
from .model_files import STEREOCRAFTER
from .video_diffusion import (
    ProgressCallback,
    ProgressTicker,
    VideoDiffusionModel,
    added_time_ids,
    chunks,
    clip_embeddings,
    random_normal,
    require_kind,
    seeded,
    vae_decode,
    vae_encode,
)

log = logging.getLogger(__name__)
OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

# The UNet halves latents three times, so frames are padded to multiples of 8 latents (64 px).
LATENT_MULTIPLE = 8
LATENT_FACTOR = 8  # pixels per latent (the SVD VAE's), as the reference's tile arithmetic assumes
MAX_TILES = 8
TILE_BLENDS = ("reference", "crossfade")


@dataclass(frozen=True)
class InpaintSettings:
    steps: int = 8
    min_guidance: float = 1.01
    max_guidance: float = 1.01
    fps: float = 7.0
    motion_bucket: float = 127.0
    noise_aug: float = 0.0
    frames_chunk: int = 23
    overlap: int = 3
    tile_num: int = 1
    tile_overlap: int = 128  # pixels
    tile_blend: str = "reference"  # or "crossfade" (see blend_tiles)
    encode_chunk: int = 5
    decode_chunk: int = 2
    color_match: str = "chunk"
    keep_unmasked: bool = False
    feather: int = 3  # pixels of soft edge when only the holes are replaced
    # Longest side the model works at (the reference's max_res); larger frames are inpainted at the working
    # size and composited into the full-size warp inside the holes. 0: always at full size.
    inpaint_max_res: int = 1024

    @property
    def guided(self) -> bool:
        return not (self.min_guidance == 1.0 and self.max_guidance == 1.0)

    def check(self) -> None:
        if self.steps < 1:
            raise StereoInputError(f"steps must be at least 1, got {self.steps}.")
        if self.frames_chunk < 1:
            raise StereoInputError(f"frames_chunk must be at least 1, got {self.frames_chunk}.")
        if not 0 <= self.overlap < self.frames_chunk:
            raise StereoInputError(
                f"overlap ({self.overlap}) must be at least 0 and smaller than frames_chunk ({self.frames_chunk}): "
                f"each chunk reuses that many frames of the previous one. The reference uses 23 and 3."
            )
        if self.tile_num < 1:
            raise StereoInputError(f"tile_num must be at least 1, got {self.tile_num}.")
        if self.tile_overlap < 0 or self.tile_overlap % LATENT_FACTOR or self.encode_chunk < 1 or self.decode_chunk < 1:
            raise StereoInputError(f"tile_overlap must be a multiple of {LATENT_FACTOR} px (>= 0) and encode/decode "
                                   f"chunks at least 1 frame.")
        if self.inpaint_max_res != 0 and self.inpaint_max_res < LATENT_FACTOR * LATENT_MULTIPLE:
            raise StereoInputError(f"inpaint_max_res must be 0 (full size) or at least {LATENT_FACTOR * LATENT_MULTIPLE} "
                                   f"px, got {self.inpaint_max_res}. The reference works at 1024.")
        if self.tile_blend not in TILE_BLENDS:
            raise StereoInputError(f"tile_blend '{self.tile_blend}' is not one of {', '.join(TILE_BLENDS)}.")
        if self.color_match not in COLOR_MODES:
            raise StereoInputError(f"color_match '{self.color_match}' is not one of {', '.join(COLOR_MODES)}.")


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    reused: int  # leading frames replaced by earlier output (and not output again)

    @property
    def frames(self) -> int:
        return self.end - self.start


def plan_chunks(frames: int, frames_chunk: int, overlap: int) -> list[Chunk]:
    """The reference's chunks: starts advance by frames_chunk - overlap; the last one ends at the last frame.

    As in the reference, the last chunk starts at T + overlap - frames_chunk (so it is
    frames_chunk - overlap long) and reuses everything before the first new frame. Unlike
    it, a clip no longer than the overlap still gets its one chunk.
    """
    plan: list[Chunk] = []
    for start in range(0, frames, frames_chunk - overlap):
        if plan and start + overlap >= frames:
            break
        if plan and start + frames_chunk > frames:
            aligned = max(frames + overlap - frames_chunk, 0)
            plan.append(Chunk(aligned, frames, start - aligned + overlap))
        else:
            plan.append(Chunk(start, min(start + frames_chunk, frames), overlap if plan else 0))
        if plan[-1].end == frames:
            break
    return plan


@dataclass(frozen=True)
class TileGrid:
    """Tiles along one axis, in latent units: one size, starts from 0 to the end, each tile after the first
    fading in over its first `fade` latents."""

    length: int
    size: int
    starts: tuple[int, ...]
    fade: int = 0

    def overlaps(self) -> list[int]:
        return [self.starts[k] + self.size - self.starts[k + 1] for k in range(len(self.starts) - 1)]

    def kept(self, k: int) -> slice:
        """The part of the axis taken from tile k: up to where the next tile starts."""
        return slice(self.starts[k], self.starts[k + 1] if k + 1 < len(self.starts) else self.length)


def plan_tiles(length: int, count: int, overlap: int) -> TileGrid:
    """`count` tiles over `length` latents, placed as the reference places them.

    The reference's tile is int((L + o (n-1)) / n) pixels (L and o in pixels) at multiples of
    size - o. Where that size is not a whole number of latents the reference fails (its
    pipeline wants multiples of 8 px); there the size is rounded up to whole latents and the
    starts are spread evenly from 0 to the end, so every overlap is still at least `overlap`.
    Both cover the frame to its last row and column.
    """
    if count == 1:
        return TileGrid(length, length, (0,))
    pixels = (length + overlap * (count - 1)) * LATENT_FACTOR // count
    size = -(-pixels // LATENT_FACTOR)
    if size >= length or size <= overlap:
        raise StereoInputError(
            f"tile_num {count} makes tiles of {size * LATENT_FACTOR} px for a {length * LATENT_FACTOR} px side with a "
            f"{overlap * LATENT_FACTOR} px tile overlap: tiles must be larger than the overlap and smaller than the "
            f"frame. Use a smaller tile_num."
        )
    if pixels % LATENT_FACTOR == 0:
        starts = tuple(k * (size - overlap) for k in range(count))
    else:
        starts = tuple(round(k * (length - size) / (count - 1)) for k in range(count))
    return TileGrid(length, size, starts, overlap)


def blend_tiles(tiles: list[list[torch.Tensor]], rows: TileGrid, cols: TileGrid, mode: str = "reference"
                ) -> torch.Tensor:
    """Assemble per-tile latents [..., h, w] (row-major grid) into one latent frame.

    reference: as the reference, tile by tile in row-major order, each tile's first `fade`
    rows are blended in place with the (already blended) tile above, then its first `fade`
    columns with the tile to its left, the new tile weighing k / fade (k = 0 .. fade-1); each
    tile then gives the part up to where the next one starts. Corners are blended twice.
    crossfade: a separable linear cross-fade across each whole overlap (bilinear at corners).
    """
    if mode == "crossfade":
        return _crossfade_tiles(tiles, rows, cols)
    if mode != "reference":
        raise StereoInputError(f"tile_blend must be one of {', '.join(TILE_BLENDS)}, got {mode!r}.")

    def fade_in(earlier: torch.Tensor, later: torch.Tensor, offset: int, fade: int, dim: int) -> None:
        if fade == 0:
            return
        shape = [1] * later.ndim
        shape[dim] = fade
        weight = (torch.arange(fade) / fade).view(shape).to(later.device)
        head = later.narrow(dim, 0, fade)
        head.copy_((1 - weight) * earlier.narrow(dim, offset, fade) + weight * head)

    blended: list[list[torch.Tensor]] = []
    for i, row in enumerate(tiles):
        blended.append([])
        for j, tile in enumerate(row):
            tile = tile.clone()
            if i > 0:
                fade_in(blended[i - 1][j], tile, rows.starts[i] - rows.starts[i - 1], rows.fade, tile.ndim - 2)
            if j > 0:
                fade_in(blended[i][j - 1], tile, cols.starts[j] - cols.starts[j - 1], cols.fade, tile.ndim - 1)
            blended[i].append(tile)

    first = blended[0][0]
    result = first.new_empty((*first.shape[:-2], rows.length, cols.length))
    for i, row in enumerate(blended):
        for j, tile in enumerate(row):
            kept_rows, kept_cols = rows.kept(i), cols.kept(j)
            result[..., kept_rows, kept_cols] = tile[..., :kept_rows.stop - kept_rows.start,
                                                     :kept_cols.stop - kept_cols.start]
    return result


def _crossfade_tiles(tiles: list[list[torch.Tensor]], rows: TileGrid, cols: TileGrid) -> torch.Tensor:
    """Linear cross-fade across each overlap; torch.lerp keeps equal values exactly."""
    def fade(length: int, like: torch.Tensor, dim: int) -> torch.Tensor:
        weight = torch.arange(length, dtype=like.dtype, device=like.device) / max(length, 1)
        shape = [1] * like.ndim
        shape[dim] = length
        return weight.view(shape)

    def join(parts: list[torch.Tensor], grid: TileGrid, dim: int) -> torch.Tensor:
        result = parts[0]
        for k, part in enumerate(parts[1:]):
            shared = grid.overlaps()[k]
            kept = result.narrow(dim, 0, result.shape[dim] - shared)
            mixed = torch.lerp(result.narrow(dim, result.shape[dim] - shared, shared),
                               part.narrow(dim, 0, shared), fade(shared, part, dim))
            result = torch.cat([kept, mixed, part.narrow(dim, shared, part.shape[dim] - shared)], dim=dim)
        return result

    return join([join(row, cols, -1) for row in tiles], rows, -2)


@dataclass
class ChunkOutput:
    frames: torch.Tensor  # [n, h, w, 3] at the model's working size: the carried frames, then the model's output
    skipped: bool  # no hole in the new frames: no model call, `frames` are the (shrunk) warp


@dataclass
class InpaintResult:
    frames: torch.Tensor  # [T, H, W, 3] on the CPU
    unet_calls: int
    chunks: list[Chunk]
    tile_num_used: int


class _Denoiser:
    """Denoises one chunk tile: [n, 3, h, w] warped frames + [n, 1, h, w] mask -> latents [n, 4, h/8, w/8]."""

    def __init__(self, model: VideoDiffusionModel, settings: InpaintSettings, generator, ticker: ProgressTicker):
        self.model, self.settings, self.generator, self.ticker = model, settings, generator, ticker
        self.unet_calls = 0
        self.time_ids = added_time_ids(settings.fps - 1, settings.motion_bucket, settings.noise_aug,
                                       model.device, model.dtype)  # SVD is conditioned on fps - 1

    def __call__(self, frames: torch.Tensor, mask: torch.Tensor, latents: torch.Tensor | None) -> torch.Tensor:
        model, settings, device, dtype = self.model, self.settings, self.model.device, self.model.dtype
        count = frames.shape[0]
        with model.placement.use(model.image_encoder):
            embedding = clip_embeddings(model, frames[:1]).to(dtype).unsqueeze(0)  # first frame only
        noise = random_normal(frames.shape, self.generator).to(device)
        frame_latents = self._encode(frames + settings.noise_aug * noise).to(dtype).unsqueeze(0)
        factor = model.vae_scale_factor
        mask = F.interpolate((mask >= 0.5).to(dtype), scale_factor=1 / factor, mode="nearest").unsqueeze(0)

        scheduler = model.new_scheduler()
        scheduler.set_timesteps(settings.steps, device=device)
        shape = self._latent_shape(frames.shape)
        if latents is None:
            latents = random_normal(shape, self.generator)
        elif tuple(latents.shape[-4:]) != shape:
            raise StereoInputError(f"latents must be shaped {shape} for this chunk, got {tuple(latents.shape)}.")
        sample = latents.reshape(shape).float().to(device) * scheduler.init_noise_sigma
        guidance = torch.linspace(settings.min_guidance, settings.max_guidance, count, device=device).view(-1, 1, 1, 1)

        with model.placement.use(model.unet) as unet:
            def predict(scaled, conditioning, image_embedding, t):
                self.unet_calls += 1
                unet_input = torch.cat([scaled.to(dtype).unsqueeze(0), *conditioning], dim=2)
                return unet(unet_input, t, encoder_hidden_states=image_embedding, added_time_ids=self.time_ids,
                            return_dict=False)[0][0].float()

            for t in scheduler.timesteps:
                scaled = scheduler.scale_model_input(sample, t)
                prediction = predict(scaled, (frame_latents, mask), embedding, t)
                if settings.guided:
                    unconditional = predict(scaled, (torch.zeros_like(frame_latents), torch.zeros_like(mask)),
                                            torch.zeros_like(embedding), t)
                    prediction = unconditional + guidance * (prediction - unconditional)
                sample = scheduler.step(prediction, t, sample).prev_sample
                self.ticker.tick()
        return sample

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        with self.model.placement.use(self.model.vae):
            return torch.cat([vae_encode(self.model, frames[part])
                              for part in chunks(frames.shape[0], self.settings.encode_chunk)])

    def _latent_shape(self, frames_shape) -> tuple[int, ...]:
        factor = self.model.vae_scale_factor
        return (frames_shape[0], self.model.latent_channels, frames_shape[-2] // factor, frames_shape[-1] // factor)

    def skip(self, frames_shape, latents: torch.Tensor | None) -> None:
        """Stand in for a call on frames of `frames_shape` that is not made: draw the noise it would have
        drawn (so every later call gets the same noise as without the skip) and count its progress."""
        random_normal(frames_shape, self.generator)
        if latents is None:
            random_normal(self._latent_shape(frames_shape), self.generator)
        for _ in range(self.settings.steps):
            self.ticker.tick()

    def hole_free(self, frames: torch.Tensor, latents: torch.Tensor | None) -> torch.Tensor:
        """Latents of a tile without holes: its frames' own encoding (what the model would give back), scaled
        as the denoised latents are (vae_decode divides by the scaling factor; the conditioning is unscaled)."""
        self.skip(frames.shape, latents)
        return self._encode(frames).float() * self.model.vae.config.scaling_factor


def _pad_to_grid(frames: torch.Tensor, multiple: int) -> torch.Tensor:
    """Edge-replicate [n, C, H, W] up to multiples of `multiple` (cropped off again after decoding)."""
    height, width = frames.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return frames
    return F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")


def _tile_windows(denoise: _Denoiser, frames_shape, tile_num: int, tile_overlap: int):
    """The tile grid (rows, cols) and each tile's (pixel window, latent window), row by row."""
    factor = denoise.model.vae_scale_factor
    rows = plan_tiles(frames_shape[-2] // factor, tile_num, tile_overlap // factor)
    cols = plan_tiles(frames_shape[-1] // factor, tile_num, tile_overlap // factor)
    windows = [[((slice(None), slice(None), slice(top * factor, (top + rows.size) * factor),
                  slice(left * factor, (left + cols.size) * factor)),
                 (Ellipsis, slice(top, top + rows.size), slice(left, left + cols.size)))
                for left in cols.starts] for top in rows.starts]
    return rows, cols, windows


def _tiled_latents(denoise: _Denoiser, frames, mask, tile_num: int, tile_overlap: int, latents,
                   holes_from: int = 0) -> torch.Tensor:
    """Denoised latents of the whole frame, tile by tile; a tile whose region (its overlap included) has
    no hole in frames holes_from.. (the ones not carried over from the previous chunk) is not denoised."""
    rows, cols, windows = _tile_windows(denoise, frames.shape, tile_num, tile_overlap)
    tiles = []
    for row_windows in windows:
        row = []
        for pixels, latent_window in row_windows:
            tile_latents = None if latents is None else latents[latent_window]
            if has_holes(mask[pixels][holes_from:]):
                row.append(denoise(frames[pixels], mask[pixels], tile_latents).cpu())
            else:
                row.append(denoise.hole_free(frames[pixels], tile_latents).cpu())
        tiles.append(row)
    return blend_tiles(tiles, rows, cols, denoise.settings.tile_blend)


def _more_tiles(size: tuple[int, int], tile_num: int, tile_overlap: int, factor: int) -> int:
    """The next tile count to try after running out of memory, or a clear error when none is left."""
    try:
        if tile_num < MAX_TILES:
            for side in size:
                plan_tiles(side // factor, tile_num + 1, tile_overlap // factor)
            return tile_num + 1
    except StereoInputError:
        pass
    raise StereoInputError(
        f"Out of GPU memory even with {tile_num}x{tile_num} tiles. Lower frames_chunk, choose 'sequential offload' "
        f"in the StereoCrafter Model Loader, or work on a smaller video.") from None


class ChunkInpainter:
    """Inpaints a clip one temporal chunk at a time (the caller feeds each chunk its reused frames).

    Carries what must persist between chunks: the noise generator and the tile count, which an
    out-of-memory error raises for this and every later chunk. inpaint_clip drives it over a clip in
    memory; the streaming engine drives it chunk by chunk from its work store.
    """

    def __init__(self, model: VideoDiffusionModel, settings: InpaintSettings, generator: torch.Generator | None,
                 ticker: ProgressTicker | None = None):
        require_kind(model, STEREOCRAFTER, "StereoCrafter Inpaint")
        settings.check()
        self.model, self.settings = model, settings
        self.ticker = ticker or ProgressTicker(None, 0)
        self.denoise = _Denoiser(model, settings, generator, self.ticker)
        self.tile_num = settings.tile_num

    @property
    def unet_calls(self) -> int:
        return self.denoise.unet_calls

    def ticks_per_chunk(self) -> int:
        return self.tile_num * self.tile_num * self.settings.steps

    def chunk(self, warped: torch.Tensor, mask: torch.Tensor, carry: torch.Tensor | None = None,
              latents: torch.Tensor | None = None, chunks_after: int = 0) -> ChunkOutput:
        """One chunk at the model's working size: warped frames [n, H, W, 3] in 0..1 and their mask [n, H, W]
        at full size; `carry` [r, h, w, 3]: the model's output (ChunkOutput.frames) for the chunk's first r
        frames, from the chunks before. Finish the new frames with finish_frames.
        """
        height, width = warped.shape[1:3]
        size = inpaint_size(height, width, self.settings.inpaint_max_res)
        frames, holes = shrink_frames(warped, size), shrink_mask(mask, size)
        reused = 0 if carry is None else carry.shape[0]
        if reused:
            frames[:reused] = carry
        if has_holes(holes[reused:]):
            output = self(frames, holes, latents, chunks_after, holes_from=reused)
            return ChunkOutput(torch.cat([carry, output[reused:]]) if reused else output, False)
        factor = self.model.vae_scale_factor
        padded = [-(-side // (factor * LATENT_MULTIPLE)) * factor * LATENT_MULTIPLE for side in size]
        rows, cols, windows = _tile_windows(self.denoise, padded, self.tile_num, self.settings.tile_overlap)
        for row in windows:
            for _, latent_window in row:
                self.denoise.skip((frames.shape[0], 3, rows.size * factor, cols.size * factor),
                                  None if latents is None else latents[latent_window])
        return ChunkOutput(frames, True)

    def __call__(self, frames: torch.Tensor, mask: torch.Tensor, latents: torch.Tensor | None = None,
                 chunks_after: int = 0, holes_from: int = 0) -> torch.Tensor:
        """Inpainted frames [n, H, W, 3] (CPU, float32) of one chunk: frames [n, H, W, 3] in 0..1 (the
        reused ones already replaced by earlier output), mask [n, H, W] (1 = hole), both at the size the
        model works at (the frames' own; `chunk` brings full-size frames to the working size).

        chunks_after: how many chunks follow, for the progress total when an out-of-memory error
        raises the tile count. holes_from: the first frame not carried over (tiles without holes in the
        frames from there on are not denoised).
        """
        model, settings, device = self.model, self.settings, self.model.device
        height, width = frames.shape[1:3]
        grid = model.vae_scale_factor * LATENT_MULTIPLE
        pixels = _pad_to_grid(frames.float().permute(0, 3, 1, 2).to(device) * 2 - 1, grid)
        holes = _pad_to_grid(mask.float().unsqueeze(1).to(device), grid)
        decode_chunk = settings.decode_chunk
        while True:
            try:
                result = _tiled_latents(self.denoise, pixels, holes, self.tile_num, settings.tile_overlap, latents,
                                        holes_from)
                break
            except OutOfMemoryError:
                model.placement.memory.empty_cache(device)
                old = self.tile_num
                self.tile_num = _more_tiles(pixels.shape[-2:], old, settings.tile_overlap, model.vae_scale_factor)
                decode_chunk = max(1, decode_chunk // 2)
                self.ticker.grow((chunks_after + 1) * (self.tile_num ** 2 - old ** 2) * settings.steps)
                log.warning("Out of GPU memory: retrying the chunk with %dx%d tiles.", self.tile_num, self.tile_num)
        with model.placement.use(model.vae):
            decoded = torch.cat([vae_decode(model, result[part].to(device))[..., :height, :width].cpu()
                                 for part in chunks(result.shape[0], decode_chunk)])
        model.placement.memory.empty_cache(device)
        return decoded.permute(0, 2, 3, 1)


def finish_frames(inpainted: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor, left: torch.Tensor | None,
                  settings: InpaintSettings, skipped: bool = False) -> torch.Tensor:
    """The right eye [n, H, W, 3] from the model's output `inpainted` [n, h, w, 3] (ChunkOutput.frames):
    colour matching, and hole-only compositing into the full-size warp [n, H, W, 3].

    Colour statistics are pooled over all the frames given (mode 'chunk': call it once per chunk's
    new frames) or per frame. Output at a working size is upsampled, colour-matched at full size (the
    statistics of the model's output, whose colours drift, against the left eye's), and composited into
    the warp inside the grown, feathered holes only, so that everywhere else the right eye is the warp
    exactly. Frames of a skipped chunk (no holes) are the warp.
    """
    if skipped:
        return warped.float()
    height, width = warped.shape[1:3]
    working = tuple(inpainted.shape[1:3])
    if working != (height, width):
        inpainted = resize_frames(inpainted.float(), height, width)
    mode = settings.color_match
    if mode != "off":
        reference = left if left is not None else warped
        inpainted = match_colors(inpainted, reference, mask=mask, mode=mode, group=inpainted.shape[0])
    if working != (height, width):
        return composite(warped, inpainted, mask, working, settings.feather)
    if settings.keep_unmasked:
        blend = refine_mask(mask, threshold=0.5, dilate=0, feather=settings.feather).unsqueeze(-1)
        inpainted = torch.lerp(warped.float(), inpainted, blend)
    return inpainted


def inpaint_clip(
    model: VideoDiffusionModel,
    warped: torch.Tensor,
    mask: torch.Tensor,
    settings: InpaintSettings = InpaintSettings(),
    left: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    latents: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> InpaintResult:
    """Fill the holes (mask = 1) of the warped right view [T, H, W, 3]; returns frames of the same size.

    `left` (optional, same size) is the colour reference for `color_match`; without it the
    warped view's own non-hole pixels (the left eye's colours) are used. Colour mode 'chunk' pools
    statistics over each chunk's new frames. `latents` optionally give the initial noise of the first
    chunk ([frames, 4, H/8, W/8] at the padded size).
    """
    require_kind(model, STEREOCRAFTER, "StereoCrafter Inpaint")
    warped = check_clip(warped, "warped")
    mask = check_mask(mask, "mask")
    check_frame_counts(warped.shape[0], mask.shape[0], "warped", "mask", broadcast_one=False)
    check_same_size(warped, mask.unsqueeze(-1), "warped", "mask")
    check_finite(warped, "warped")
    check_finite(mask, "mask")
    if left is not None:
        left = check_clip(left, "left")
        check_frame_counts(warped.shape[0], left.shape[0], "warped", "left", broadcast_one=False)
        check_same_size(warped, left, "warped", "left")
    settings.check()
    low, high = float(mask.min()), float(mask.max())
    if low < 0 or high > 1:
        log.warning("mask values span %.3g..%.3g; clamped to 0..1 (1 = hole to fill).", low, high)
        mask = mask.clamp(0, 1)

    plan = plan_chunks(warped.shape[0], settings.frames_chunk, settings.overlap)
    ticker = ProgressTicker(progress, 0)
    inpaint = ChunkInpainter(model, settings, seeded(generator, seed), ticker)
    ticker.grow(len(plan) * inpaint.ticks_per_chunk())
    # The model's output at its working size: what later chunks reuse, and what the right eye is made from.
    size = inpaint_size(*warped.shape[1:3], settings.inpaint_max_res)
    produced = torch.empty((warped.shape[0], *size, 3), dtype=torch.float32)
    skipped = []

    with torch.no_grad():
        for index, chunk in enumerate(plan):
            carry = produced[chunk.start:chunk.start + chunk.reused] if chunk.reused else None
            done = inpaint.chunk(warped[chunk.start:chunk.end], mask[chunk.start:chunk.end], carry,
                                 latents if index == 0 else None, chunks_after=len(plan) - index - 1)
            produced[chunk.start + chunk.reused:chunk.end] = done.frames[chunk.reused:]
            skipped.append(done.skipped)

    news = [slice(chunk.start + chunk.reused, chunk.end) for chunk in plan]
    if settings.color_match == "clip":
        output = finish_frames(produced, warped, mask, left, settings)
        for new, skip in zip(news, skipped):
            if skip:
                output[new] = warped[new]
    else:
        output = torch.empty_like(warped, dtype=torch.float32)
        for new, skip in zip(news, skipped):
            output[new] = finish_frames(produced[new], warped[new], mask[new], None if left is None else left[new],
                                        settings, skip)
    return InpaintResult(frames=output, unet_calls=inpaint.unet_calls, chunks=plan, tile_num_used=inpaint.tile_num)
