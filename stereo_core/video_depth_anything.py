"""Video Depth Anything: loading the published checkpoints and the official windowed inference, streamed.

The official inference (DepthAnything/Video-Depth-Anything, `infer_video_depth`):
- Frames are resized (bicubic, aspect kept, the short side to `input_size`, both sides multiples
  of 14; clips wider than 16:9 get a proportionally smaller `input_size`) and ImageNet-normalised.
- Windows of 32 frames step by 22. From the second window on, the first 10 inputs are the
  previous window's inputs at positions KEYFRAMES: the clip's first frame, the frame at
  position 12, and its last 8 frames (the overlap). The clip's end is padded with its last frame.
- Each window's depth is resized to the frame size (bilinear, corners aligned), then fitted to the
  depth already delivered by a least-squares scale and shift (its first two outputs against the
  aligned depth of the clip's first frame and of the previous window's position 12) and clamped at
  zero. The 8 overlapping frames cross-fade linearly from the previous window's to this one's.

Here the same computation is streamed: `VideoDepthStream` keeps one window of inputs plus a carry
(10 keyframe inputs, 2 reference depth maps, 8 depth maps awaiting their cross-fade) and hands out
each depth frame as soon as no later window can change it, so memory does not grow with the clip.
Output: relative inverse depth at the frame size (larger = nearer), float32 on the CPU.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import model_files
from .errors import StereoInputError
from .placement import MemoryHooks, Placement, resolve_dtype
from .vda_network import ENCODERS, PATCH, VideoDepthAnything, config_from_state_dict

WINDOW = 32
OVERLAP = 10
STEP = WINDOW - OVERLAP  # new frames per window
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)  # the inputs carried into the next window's first 10
INTERPOLATED = 8  # overlapping frames cross-faded between windows
ALIGNED = OVERLAP - INTERPOLATED  # the next window's outputs that set its scale and shift
FINAL_PER_WINDOW = WINDOW - INTERPOLATED  # positions of a window final once it ran (0..23)
INPUT_SIZE = 518
WIDEST_RATIO = 1.78  # wider clips get a smaller input size, as the official code does
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STATE_VERSION = 1


# --- sizes -------------------------------------------------------------------------------------------


def _multiple_of_patch(value: float, at_least: int) -> int:
    snapped = round(value / PATCH) * PATCH  # round half to even, as numpy's round
    return snapped if snapped >= at_least else math.ceil(value / PATCH) * PATCH


def model_input_size(height: int, width: int, input_size: int = INPUT_SIZE) -> tuple[int, int]:
    """The (height, width) frames are resized to for the model."""
    if height < 1 or width < 1:
        raise StereoInputError(f"The frame size {height}x{width} is empty.")
    if input_size < PATCH:
        raise StereoInputError(f"input_size {input_size} is below {PATCH}; use {INPUT_SIZE} (the default) or a "
                               f"smaller multiple of {PATCH} for speed.")
    ratio = max(height, width) / min(height, width)
    if ratio > WIDEST_RATIO:
        input_size = round(int(input_size * 1.777 / ratio) / PATCH) * PATCH
    scale = max(input_size / height, input_size / width)  # the short side reaches input_size
    return _multiple_of_patch(scale * height, input_size), _multiple_of_patch(scale * width, input_size)


def window_count(frames: int) -> int:
    """How many model windows a clip of `frames` frames takes."""
    return math.ceil(frames / STEP) if frames > 0 else 0


# --- the streamed inference -------------------------------------------------------------------------


def _least_squares_fit(prediction: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """scale, shift minimising |scale * prediction + shift - target|^2 (1, 0 when prediction is constant)."""
    wide = torch.float32 if prediction.device.type == "mps" else torch.float64
    p, t = prediction.to(wide).flatten(), target.to(wide).flatten()
    p_mean, t_mean = p.mean(), t.mean()
    spread = ((p - p_mean) ** 2).sum()
    if float(spread) == 0.0:
        return 1.0, 0.0
    scale = ((p - p_mean) * (t - t_mean)).sum() / spread
    return float(scale), float(t_mean - scale * p_mean)


class VideoDepthStream:
    """Video Depth Anything over a clip that arrives in pieces (see the module docstring).

    push(frames) takes RGB frames [n, H, W, 3] (uint8 0..255, or float 0..1) and returns the depth
    frames that became final [m, H, W] (float32, CPU, in order); finish() returns the rest. state()
    and restore() carry a stream over to a new one (after a kill); restoring a state taken at any
    point and pushing the same following frames gives the identical depth.

    The model runs on `device` in `dtype` (defaults: where the model's weights are, in their dtype);
    it must be there while push() and finish() run.
    """

    def __init__(self, model: VideoDepthAnything, height: int, width: int, input_size: int = INPUT_SIZE,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        weight = next(model.parameters())
        self.model = model
        self.height, self.width = int(height), int(width)
        self.input_size = int(input_size)
        self.model_size = model_input_size(self.height, self.width, self.input_size)
        self.device = torch.device(device) if device is not None else weight.device
        self.dtype = dtype or weight.dtype
        self.frames_pushed = 0
        self.frames_emitted = 0
        self.windows_done = 0
        self._queue: list[torch.Tensor] = []  # model inputs [3, h, w] (float32) not yet in a window
        self._keyframes: torch.Tensor | None = None  # [10, 3, h, w] from the previous window
        self._references: torch.Tensor | None = None  # [2, H, W]: aligned depth of frame 0 and of position 12
        self._tail: torch.Tensor | None = None  # [8, H, W]: the previous window's last 8, awaiting the cross-fade
        self._finished = False

    # --- what the caller sees

    @property
    def frames_until_next_window(self) -> int:
        """Frames still to push before the next window runs (push in pieces of this size to stop at a
        window boundary, where state() holds no queued inputs)."""
        needed = WINDOW if self.windows_done == 0 else STEP
        return needed - len(self._queue)

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        if self._finished:
            raise StereoInputError("This depth stream is finished; start a new one for another clip.")
        frames = self._check_frames(frames)
        finals = []
        for start in range(0, frames.shape[0], STEP):
            self._queue.extend(self._prepare(frames[start:start + STEP]))
            self.frames_pushed += min(STEP, frames.shape[0] - start)
            while self.frames_until_next_window <= 0:
                finals.append(self._run_window())
        return self._concat(finals)

    def finish(self) -> torch.Tensor:
        """The remaining depth frames (the clip's end is padded with its last frame, as the official code)."""
        if self._finished:
            return self._concat([])
        self._finished = True
        finals = []
        while self.windows_done < window_count(self.frames_pushed):
            last = self._queue[-1] if self._queue else self._keyframes[-1]
            self._queue.extend([last] * self.frames_until_next_window)
            finals.append(self._run_window())
        if self._tail is not None:
            finals.append(self._tail.cpu())
            self.frames_emitted += self._tail.shape[0]
            self._tail = None
        depth = self._concat(finals)
        padding = max(0, self.frames_emitted - self.frames_pushed)  # depth of the repeated last frame
        self.frames_emitted -= padding
        return depth[:depth.shape[0] - padding]

    def state(self) -> dict:
        """CPU tensors and small JSON-able values that let restore() continue this stream exactly."""
        def cpu(tensor):
            return None if tensor is None else tensor.detach().to("cpu", copy=True)

        return {
            "meta": {"version": STATE_VERSION, "height": self.height, "width": self.width,
                     "input_size": self.input_size, "model_size": list(self.model_size),
                     "frames_pushed": self.frames_pushed, "frames_emitted": self.frames_emitted,
                     "windows_done": self.windows_done},
            "queue": torch.stack(self._queue).cpu() if self._queue else None,
            "keyframes": cpu(self._keyframes),
            "references": cpu(self._references),
            "tail": cpu(self._tail),
        }

    def restore(self, state: dict) -> None:
        """Continue from a state() of a stream over the same clip, frame size and input_size."""
        meta = state.get("meta", {}) if isinstance(state, dict) else {}
        expected = {"version": STATE_VERSION, "height": self.height, "width": self.width,
                    "input_size": self.input_size, "model_size": list(self.model_size)}
        differing = [key for key, value in expected.items() if meta.get(key) != value]
        if differing:
            raise StereoInputError(
                f"The saved Video Depth Anything state does not fit this run ({', '.join(differing)} differ: saved "
                f"{ {key: meta.get(key) for key in differing} }, now { {key: expected[key] for key in differing} }). "
                f"Start the depth again from the first frame.")

        def here(tensor):
            return None if tensor is None else tensor.to(self.device)

        self.frames_pushed = int(meta["frames_pushed"])
        self.frames_emitted = int(meta["frames_emitted"])
        self.windows_done = int(meta["windows_done"])
        queue = state.get("queue")
        self._queue = list(here(queue).unbind(0)) if queue is not None else []
        self._keyframes = here(state.get("keyframes"))
        self._references = here(state.get("references"))
        self._tail = here(state.get("tail"))
        self._finished = False

    # --- inside

    def _check_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise StereoInputError(f"Video Depth Anything needs RGB frames shaped [frames, height, width, 3], "
                                   f"got {shape}.")
        if tuple(frames.shape[1:3]) != (self.height, self.width):
            raise StereoInputError(f"A frame of {frames.shape[1]}x{frames.shape[2]} was pushed into a depth stream "
                                   f"set up for {self.height}x{self.width}; every frame of a clip has one size.")
        return frames

    def _prepare(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Model inputs (float32, on the device) of RGB frames: resized, ImageNet-normalised."""
        if frames.shape[0] == 0:
            return []
        x = frames.to(self.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = x.permute(0, 3, 1, 2)
        if tuple(x.shape[-2:]) != self.model_size:
            x = F.interpolate(x, size=self.model_size, mode="bicubic", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        return list(((x - mean) / std).unbind(0))

    def _frame_size(self, depth: torch.Tensor) -> torch.Tensor:
        return F.interpolate(depth.unsqueeze(1), size=(self.height, self.width), mode="bilinear",
                             align_corners=True).squeeze(1)

    def _run_window(self) -> torch.Tensor:
        """Run the next window on the queued inputs; the depth frames it made final (CPU)."""
        new = WINDOW if self._keyframes is None else STEP
        inputs = torch.stack(self._queue[:new])
        del self._queue[:new]
        if self._keyframes is not None:
            inputs = torch.cat([self._keyframes, inputs])
        self._keyframes = inputs[list(KEYFRAMES)].clone()
        with torch.no_grad():
            raw = self.model(inputs.unsqueeze(0).to(self.dtype))[0].float()  # [32, h, w]
        del inputs
        self.windows_done += 1

        finals = []
        first = self._references is None
        if first:  # the first window sets the scale
            scale, shift = 1.0, 0.0
            self._references = self._frame_size(raw[[0, KEYFRAMES[1]]])
        else:
            scale, shift = _least_squares_fit(self._frame_size(raw[:ALIGNED]), self._references)

        def aligned(start: int, stop: int) -> torch.Tensor:
            return (self._frame_size(raw[start:stop]) * scale + shift).clamp_min_(0)

        if not first:
            incoming = aligned(ALIGNED, OVERLAP)
            fade = [i * (1.0 / (INTERPOLATED - 1)) for i in range(INTERPOLATED)]
            finals.append(torch.stack([self._tail[i] * (1 - w) + incoming[i] * w for i, w in enumerate(fade)]))
            self._references = torch.stack([self._references[0], aligned(KEYFRAMES[1], KEYFRAMES[1] + 1)[0]])
        for start in range(0 if first else OVERLAP, FINAL_PER_WINDOW, INTERPOLATED):  # a few full-size maps at a time
            finals.append(aligned(start, min(start + INTERPOLATED, FINAL_PER_WINDOW)).cpu())
        self._tail = aligned(FINAL_PER_WINDOW, WINDOW)
        depth = torch.cat([piece.cpu() for piece in finals])
        self.frames_emitted += depth.shape[0]
        return depth

    def _concat(self, pieces: list[torch.Tensor]) -> torch.Tensor:
        pieces = [piece for piece in pieces if piece.shape[0]]
        if not pieces:
            return torch.empty(0, self.height, self.width)
        return torch.cat(pieces)


def infer_video_depth(model: VideoDepthAnything, frames: torch.Tensor, input_size: int = INPUT_SIZE) -> torch.Tensor:
    """Raw Video Depth Anything depth [N, H, W] (float32, CPU) of an in-memory clip [N, H, W, 3]
    (uint8, or float 0..1), computed by the stream on the model's device in its dtype."""
    stream = VideoDepthStream(model, frames.shape[1], frames.shape[2], input_size)
    pieces = [stream.push(frames[start:start + STEP]) for start in range(0, frames.shape[0], STEP)]
    pieces.append(stream.finish())
    return torch.cat(pieces)


# --- loading --------------------------------------------------------------------------------------


def checkpoint_encoder(path: Path) -> str | None:
    """The ViT size a published checkpoint's file name gives (video_depth_anything_vits.pth -> 'vits')."""
    match = re.fullmatch(r"video_depth_anything_(vit[sbl])\.pth", Path(path).name)
    return match.group(1) if match else None


def load_network(path: str | Path, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> VideoDepthAnything:
    """The network of a published checkpoint file (all keys must match: strict loading)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise StereoInputError(f"Cannot read the Video Depth Anything checkpoint {path}: {error}. Download it "
                               f"again.") from error
    try:
        config = config_from_state_dict(state)
        network = VideoDepthAnything(config)
        network.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError) as error:
        raise StereoInputError(f"{path} is not a Video Depth Anything checkpoint as published "
                               f"({str(error).splitlines()[0]}). Download it again.") from error
    return network.to(device=device, dtype=dtype).eval().requires_grad_(False)


@dataclass
class VideoDepthAnythingModel:
    """A loaded Video Depth Anything: the network, its size and where it runs (moved there for the work)."""

    network: VideoDepthAnything
    kind: str  # model_files.VDA_SMALL / VDA_BASE / VDA_LARGE
    encoder: str  # vits / vitb / vitl, as the checkpoint's file name says
    placement: Placement
    dtype: torch.dtype

    @property
    def device(self) -> torch.device:
        return self.placement.device


def load_video_depth_anything(folder: str | Path, dtype: str = "auto", device: torch.device | str = "cpu",
                              offload_device: torch.device | str = "cpu", policy: str = "offload",
                              memory: MemoryHooks | None = None) -> VideoDepthAnythingModel:
    """Load a Video Depth Anything folder (`Video-Depth-Anything-Small` holding video_depth_anything_vits.pth;
    Base/Large likewise). dtype: a loader choice (auto/fp16/bf16/fp32). The weights stay on
    `offload_device` until the work moves them to `device` (policy as in stereo_core.placement)."""
    kind, checkpoint = model_files.check_video_depth_anything_folder(folder)
    placement = Placement(torch.device(device), torch.device(offload_device), policy, memory or MemoryHooks())
    torch_dtype = resolve_dtype(dtype, placement.device)
    home = placement.device if placement.policy == "keep" else placement.offload_device
    network = load_network(checkpoint, torch_dtype, home)
    return VideoDepthAnythingModel(network, kind, checkpoint_encoder(checkpoint) or "vits", placement, torch_dtype)


def estimate_depth(model: VideoDepthAnythingModel, video: torch.Tensor, input_size: int = INPUT_SIZE,
                   progress=None) -> torch.Tensor:
    """Depth of a clip [T, H, W, 3] (float 0..1) min-max normalised over the clip (1 = nearest), [T, H, W].

    progress(done, total) is called after each model window."""
    from .frames import check_clip, check_finite

    if getattr(model, "kind", None) not in model_files.VIDEO_DEPTH_ANYTHING:
        got = model_files.TITLES.get(getattr(model, "kind", None), type(model).__name__)
        raise StereoInputError(f"Video Depth Anything Depth needs a Video Depth Anything model, but a {got} model "
                               f"is connected. Connect the Video Depth Anything Model Loader.")
    video = check_clip(video, "image")
    check_finite(video, "image")
    frames, height, width, _ = video.shape
    windows = window_count(frames)
    depth = torch.empty(frames, height, width)
    done = 0
    with model.placement.use(model.network) as network:
        stream = VideoDepthStream(network, height, width, input_size, model.device, model.dtype)
        for start in range(0, frames, STEP):
            piece = stream.push(video[start:start + STEP])
            depth[done:done + piece.shape[0]] = piece
            done += piece.shape[0]
            if progress is not None:
                progress(stream.windows_done, windows)
        piece = stream.finish()
        depth[done:done + piece.shape[0]] = piece
    model.placement.memory.empty_cache(model.device)
    if progress is not None:
        progress(windows, windows)
    low, high = float(depth.min()), float(depth.max())
    return depth.sub_(low).div_(max(high - low, 1e-12))


# --- compute -----------------------------------------------------------------------------------------


def flops_per_frame(encoder: str, height: int, width: int, input_size: int = INPUT_SIZE) -> float:
    """Floating-point operations per video frame of the published `encoder` (vits/vitb/vitl) on frames of
    height x width: one 32-frame window counted on the meta device (no weights, no memory), divided by
    the 22 new frames each window adds (matrix products and convolutions, as torch's FlopCounterMode counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    if encoder not in ENCODERS:
        raise StereoInputError(f"encoder '{encoder}' is not one of {', '.join(ENCODERS)}.")
    rows, cols = model_input_size(height, width, input_size)
    with torch.device("meta"):
        network = VideoDepthAnything(ENCODERS[encoder]).eval()
        window = torch.empty(1, WINDOW, 3, rows, cols)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(window)
    return counter.get_total_flops() / STEP
