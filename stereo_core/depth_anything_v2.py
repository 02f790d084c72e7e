"""Depth Anything V2 through `transformers` (the `-hf` checkpoints): per-frame relative depth, and the
temporal normalisation that keeps per-frame depth from pumping over a video.

The model gives relative inverse depth (disparity-like, larger = nearer) for one image at a time, on
its own arbitrary scale per frame. Normalising each frame by its own min and max makes the depth of a
video pump; normalising over the whole clip needs the whole clip. `TemporalMinMax` does what iw3's
`--ema-normalize` does: each frame is normalised with the min/max over a look-ahead window of frames
(itself and the next buffer-1), exponentially smoothed over the frames before it, and started afresh
at every scene cut. Only the look-ahead window of depth frames is ever held.

Preprocessing follows the checkpoint's image processor (preprocessor_config.json, DPTImageProcessor):
8-bit frames are resized keeping the aspect ratio to multiples of 14 (518 by default) with
anti-aliased bicubic as the processor's torchvision backend does it, then normalised with ImageNet's
mean and std; the predicted depth is resized back to the frame size with bicubic, as the processor's
post_process_depth_estimation does. It runs in torch on the frames batch (no PIL round trip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from . import model_files
from .depthcrafter import normalize_depth
from .errors import StereoInputError
from .model_files import DAV2_BASE, DAV2_KINDS, DAV2_LARGE, DAV2_SMALL
from .placement import MemoryHooks, Placement, resolve_dtype, same_device
from .video_diffusion import _load, _transformers_dtype_key

DEFAULT_INPUT_SIZE = 518
NORMALIZE_CHOICES = ("ema", "clip", "frame")
ProgressCallback = Callable[[int, int], None]

# PIL resample codes the processor may name, as torch interpolation modes.
_RESAMPLE_MODES = {2: "bilinear", 3: "bicubic"}

# The published checkpoints' architectures (transformers' conversion of the official weights): the DINOv2
# ViT size, the layers the DPT head reads, and the head's widths. Used to count compute without weights.
ARCHITECTURES = {
    DAV2_SMALL: dict(hidden=384, layers=12, heads=6, out_indices=[3, 6, 9, 12], neck=[48, 96, 192, 384], fusion=64),
    DAV2_BASE: dict(hidden=768, layers=12, heads=12, out_indices=[3, 6, 9, 12], neck=[96, 192, 384, 768],
                    fusion=128),
    DAV2_LARGE: dict(hidden=1024, layers=24, heads=16, out_indices=[5, 12, 18, 24], neck=[256, 512, 1024, 1024],
                     fusion=256),
}
SIZE_NAMES = {"small": DAV2_SMALL, "base": DAV2_BASE, "large": DAV2_LARGE, "vits": DAV2_SMALL, "vitb": DAV2_BASE,
              "vitl": DAV2_LARGE}


@dataclass(frozen=True)
class Preprocessing:
    """What the checkpoint's preprocessor_config.json says about turning a frame into model input."""

    size: int = DEFAULT_INPUT_SIZE
    multiple: int = 14
    keep_aspect_ratio: bool = True
    mode: str = "bicubic"
    rescale_factor: float = 1 / 255
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_config(cls, config: dict, where: Path) -> "Preprocessing":
        size = config.get("size", {})
        size = size.get("height", size.get("shortest_edge")) if isinstance(size, dict) else size
        resample = config.get("resample", 3)
        if resample not in _RESAMPLE_MODES:
            raise StereoInputError(f"{where} asks for resample {resample}; Depth Anything V2 checkpoints use 3 "
                                   f"(bicubic). Download preprocessor_config.json again.")
        return cls(size=int(size or DEFAULT_INPUT_SIZE), multiple=int(config.get("ensure_multiple_of", 14)),
                   keep_aspect_ratio=bool(config.get("keep_aspect_ratio", True)), mode=_RESAMPLE_MODES[resample],
                   rescale_factor=float(config.get("rescale_factor", 1 / 255)),
                   mean=tuple(config.get("image_mean", cls.mean)), std=tuple(config.get("image_std", cls.std)))


@dataclass
class DepthAnythingV2Model:
    """A loaded Depth Anything V2 checkpoint: the network, its preprocessing, and where it runs."""

    kind: str
    network: torch.nn.Module
    preprocessing: Preprocessing
    dtype: torch.dtype
    placement: Placement
    folder: str = ""

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def title(self) -> str:
        return model_files.TITLES.get(self.kind, "Depth Anything V2")

    def __repr__(self) -> str:
        return f"DepthAnythingV2Model({self.title}, {self.dtype}, {self.placement.policy} on {self.device})"


def kind_of_folder(folder: str | Path) -> str | None:
    """Which Depth Anything V2 size a folder holds: by its name when it is a Hub name, else by its config."""
    name = Path(folder).name
    for kind in DAV2_KINDS:
        if model_files.FOLDER_NAMES[kind] == name:
            return kind
    looks = model_files.looks_like(Path(folder)) if Path(folder).is_dir() else None
    return looks if looks in DAV2_KINDS else None


def load_depth_anything_v2(
    folder: str | Path,
    dtype: str = "auto",
    device: torch.device | str = "cpu",
    policy: str = "offload",
    memory: MemoryHooks | None = None,
    offload_device: torch.device | str = "cpu",
) -> DepthAnythingV2Model:
    """Load a Depth Anything V2 `-hf` folder (config.json, model.safetensors, preprocessor_config.json);
    the weights stay on the CPU until used."""
    from transformers import DepthAnythingForDepthEstimation

    folder = Path(folder)
    kind = kind_of_folder(folder) or DAV2_SMALL
    problem = model_files.folder_problem(folder, kind)
    if problem is not None:
        raise problem
    device = torch.device(device)
    weight_dtype = resolve_dtype(dtype, device)
    config = model_files.read_json(folder / "config.json")
    if config.get("model_type") != "depth_anything" or config.get("depth_estimation_type", "relative") != "relative":
        raise StereoInputError(
            f"'{folder}' does not hold a relative Depth Anything V2 model (its config.json says model_type "
            f"{config.get('model_type')!r}, depth_estimation_type {config.get('depth_estimation_type')!r}). Use "
            f"{', '.join(model_files.DOWNLOADS[k] for k in DAV2_KINDS)}.")
    preprocessing = Preprocessing.from_config(model_files.read_json(folder / "preprocessor_config.json"),
                                              folder / "preprocessor_config.json")
    network = _load(model_files.TITLES[kind], folder, lambda: DepthAnythingForDepthEstimation.from_pretrained(
        folder, **{_transformers_dtype_key(): weight_dtype}))
    network.eval().requires_grad_(False)
    return DepthAnythingV2Model(kind=kind, network=network, preprocessing=preprocessing, dtype=weight_dtype,
                                placement=Placement(device=device, offload_device=torch.device(offload_device),
                                                    policy=policy, memory=memory or MemoryHooks()),
                                folder=str(folder))


def require_model(model, node: str = "Depth Anything V2 Depth") -> DepthAnythingV2Model:
    if not isinstance(model, DepthAnythingV2Model):
        raise StereoInputError(f"{node} needs a Depth Anything V2 model, but a {type(model).__name__} is "
                               f"connected. Connect the Depth Anything V2 Model Loader.")
    return model


# --- one frame batch through the model -------------------------------------------------------------------


def model_input_size(height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE, multiple: int = 14,
                     keep_aspect_ratio: bool = True) -> tuple[int, int]:
    """The size the processor resizes a height x width frame to (DPTImageProcessor's rule: the side that
    needs the smaller change goes to input_size, the other keeps the aspect; each rounded to `multiple`)."""
    if input_size < multiple:
        raise StereoInputError(f"input_size must be at least {multiple}, got {input_size}.")
    scale_h, scale_w = input_size / height, input_size / width
    if keep_aspect_ratio:
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h

    def to_multiple(value: float) -> int:
        rounded = round(value / multiple) * multiple
        return rounded if rounded > 0 else math.ceil(value / multiple) * multiple

    return to_multiple(scale_h * height), to_multiple(scale_w * width)


def as_bytes(frames: torch.Tensor) -> torch.Tensor:
    """Frames [n, H, W, 3] (uint8, or float 0..1) as the 8-bit images the processor takes, [n, 3, H, W]."""
    if frames.dtype != torch.uint8:
        frames = (frames.float() * 255).round_().clamp_(0, 255).to(torch.uint8)
    return frames.permute(0, 3, 1, 2)


def preprocess(frames: torch.Tensor, size: tuple[int, int], preprocessing: Preprocessing) -> torch.Tensor:
    """pixel_values [n, 3, h, w] float32 of 8-bit frames [n, 3, H, W], on the frames' device.

    The processor's torchvision backend resizes 8-bit images natively on the CPU and through float
    (clamped and rounded back to 8 bits) elsewhere; so does this, so it gives the same numbers.
    """
    if tuple(frames.shape[-2:]) != tuple(size):
        if frames.device.type == "cpu":
            frames = F.interpolate(frames, size=size, mode=preprocessing.mode, antialias=True, align_corners=False)
        else:
            frames = F.interpolate(frames.float(), size=size, mode=preprocessing.mode, antialias=True,
                                   align_corners=False).clamp_(0, 255).round_()
    # Rescaling folded into the mean and std, as the processor does.
    mean = torch.tensor(preprocessing.mean, device=frames.device) * (1.0 / preprocessing.rescale_factor)
    std = torch.tensor(preprocessing.std, device=frames.device) * (1.0 / preprocessing.rescale_factor)
    return (frames.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def infer(network: torch.nn.Module, frames: torch.Tensor, preprocessing: Preprocessing, input_size: int,
          device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Raw relative inverse depth [n, H, W] float32 on the CPU of frames [n, H, W, 3] (uint8 or float 0..1),
    with `network` already on `device`."""
    height, width = frames.shape[1:3]
    size = model_input_size(height, width, input_size, preprocessing.multiple, preprocessing.keep_aspect_ratio)
    pixels = preprocess(as_bytes(frames.to(device)), size, preprocessing)
    predicted = network(pixel_values=pixels.to(dtype)).predicted_depth.float()
    if tuple(predicted.shape[-2:]) != (height, width):
        predicted = F.interpolate(predicted.unsqueeze(1), size=(height, width), mode="bicubic",
                                  align_corners=False)[:, 0]
    return predicted.cpu()


# --- temporal normalisation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmaSettings:
    """iw3's --ema-normalize: min/max over a look-ahead of `buffer` frames, smoothed with `decay` (0 = none)."""

    buffer: int = 30
    decay: float = 0.75

    def check(self) -> None:
        if self.buffer < 1:
            raise StereoInputError(f"ema buffer must be at least 1 frame, got {self.buffer}.")
        if not 0.0 <= self.decay < 1.0:
            raise StereoInputError(f"ema decay must be at least 0 and below 1, got {self.decay}.")


def _normalized(depth: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return normalize_depth(depth.clone(), low, high).clamp_(0.0, 1.0)


@dataclass
class TemporalMinMax:
    """Streaming normalisation of depth frames to 0..1 (1 = near), in frame order.

    Frame i of a scene is normalised with min and max over frames i .. i+buffer-1 (within its scene),
    smoothed as ema = decay * ema + (1 - decay) * window; the first window of a scene is taken as is.
    The last frames of a scene, whose windows run past its end, use the scene's last smoothed values
    (a scene shorter than the buffer: its own plain min-max). A scene cut (the first frame of a new scene,
    in the numbering where the first pushed frame is `start`) starts everything afresh.
    """

    settings: EmaSettings = field(default_factory=EmaSettings)
    scene_cuts: Iterable[int] = ()
    start: int = 0

    def __post_init__(self):
        self.settings.check()
        self.scene_cuts = frozenset(int(cut) for cut in self.scene_cuts)
        self.pushed = 0
        self._queue: list[torch.Tensor] = []
        self._lows: list[float] = []
        self._highs: list[float] = []
        self._ema: tuple[float, float] | None = None

    @property
    def held(self) -> int:
        """Frames waiting for their look-ahead."""
        return len(self._queue)

    def push(self, depth: torch.Tensor) -> torch.Tensor:
        """Raw depth frames [n, H, W] in; the frames now final, normalised, out ([m, H, W] float32)."""
        out = []
        for frame in depth.float():
            low, high = torch.aminmax(frame)
            self._queue.append(frame)
            self._lows.append(float(low))
            self._highs.append(float(high))
            self.pushed += 1
            if len(self._queue) == self.settings.buffer:
                out.append(self._emit())
            if self.start + self.pushed in self.scene_cuts:
                out += self._flush()
        return self._stack(out, depth)

    def finish(self) -> torch.Tensor:
        """The frames still held, normalised: call once after the last push."""
        return self._stack(self._flush(), None)

    def _emit(self) -> torch.Tensor:
        window = (min(self._lows), max(self._highs))
        if self._ema is None:
            self._ema = window
        else:
            decay = self.settings.decay
            self._ema = tuple(decay * old + (1.0 - decay) * new for old, new in zip(self._ema, window))
        self._lows.pop(0)
        self._highs.pop(0)
        return _normalized(self._queue.pop(0), *self._ema)

    def _flush(self) -> list[torch.Tensor]:
        if not self._queue:
            self._ema = None
            return []
        low, high = self._ema if self._ema is not None else (min(self._lows), max(self._highs))
        out = [_normalized(frame, low, high) for frame in self._queue]
        self._queue, self._lows, self._highs, self._ema = [], [], [], None
        return out

    def _stack(self, frames: list[torch.Tensor], like: torch.Tensor | None) -> torch.Tensor:
        if frames:
            return torch.stack(frames)
        shape = like.shape[1:] if like is not None else (0, 0)
        return torch.empty(0, *shape)

    def state(self, with_frames: bool = True) -> dict:
        """What a resumed run needs to continue identically: {"tensors": CPU tensors, "meta": JSON-able}.

        The held raw depth frames (the last `held` pushed, at most buffer-1) are its bulk; a caller that keeps
        raw depth anyway (a store) passes with_frames=False and gives them back to restore().
        """
        queue = torch.stack(self._queue) if self._queue and with_frames else torch.empty(0)
        return {"tensors": {"queue": queue.clone()},
                "meta": {"pushed": self.pushed, "lows": list(self._lows), "highs": list(self._highs),
                         "ema": list(self._ema) if self._ema is not None else None, "start": self.start,
                         "buffer": self.settings.buffer, "decay": self.settings.decay}}

    def restore(self, state: dict, held: torch.Tensor | None = None) -> None:
        """Continue from state(); `held`: the raw depth of the last frames pushed, when the state has none."""
        meta = state["meta"]
        if (meta["buffer"], meta["decay"], meta["start"]) != (self.settings.buffer, self.settings.decay, self.start):
            raise StereoInputError("The saved depth normalisation was made with other EMA settings; it cannot be "
                                   "continued with these (start the depth again).")
        queue = state["tensors"]["queue"]
        count = len(meta["lows"])
        if queue.shape[0] != count:
            if held is None or held.shape[0] < count:
                raise StereoInputError(f"Resuming the depth normalisation needs the raw depth of the last {count} "
                                       f"frames, which the saved state does not hold.")
            queue = held[held.shape[0] - count:]
        self.pushed = int(meta["pushed"])
        self._queue = list(queue.float())
        self._lows, self._highs = [float(v) for v in meta["lows"]], [float(v) for v in meta["highs"]]
        self._ema = tuple(meta["ema"]) if meta["ema"] is not None else None


class DepthAnythingV2Stream:
    """Depth Anything V2 over a video in chunks: frames in, final normalised depth out, in order.

    push(frames [n, H, W, 3] uint8 or float 0..1, on the CPU) -> depth [m, H, W] float32 in 0..1
    (1 = near) for the frames whose look-ahead is complete; finish() -> the rest. state()/restore()
    at any chunk boundary continue identically. Held in memory: at most `ema.buffer` depth frames.
    """

    def __init__(self, model: DepthAnythingV2Model, height: int, width: int,
                 input_size: int = DEFAULT_INPUT_SIZE, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, ema: EmaSettings = EmaSettings(),
                 scene_cuts: Iterable[int] = (), start: int = 0, batch_size: int = 4,
                 progress: ProgressCallback | None = None):
        self.model = require_model(model)
        if dtype is not None and dtype != model.dtype:
            raise StereoInputError(f"This Depth Anything V2 model was loaded in {model.dtype}, not {dtype}: load "
                                   f"it with that dtype instead.")
        self.height, self.width, self.input_size = int(height), int(width), int(input_size)
        model_input_size(self.height, self.width, self.input_size, model.preprocessing.multiple)  # checks the size
        self.device = torch.device(device) if device is not None else model.device
        self.batch_size = max(1, int(batch_size))
        self.normalizer = TemporalMinMax(ema, scene_cuts, start)
        self.progress = progress

    def depth(self, frames: torch.Tensor) -> torch.Tensor:
        """Raw relative inverse depth [n, H, W] of frames (no normalisation), batch by batch."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or tuple(frames.shape[1:3]) != (self.height, self.width):
            raise StereoInputError(f"Depth Anything V2 expects frames [n, {self.height}, {self.width}, 3], got "
                                   f"{list(frames.shape)}.")
        model = self.model
        placement = model.placement
        if not same_device(self.device, placement.device):
            placement = Placement(device=self.device, offload_device=placement.offload_device,
                                  policy=placement.policy, memory=placement.memory)
        parts = []
        with torch.no_grad(), placement.use(model.network) as network:
            for first in range(0, frames.shape[0], self.batch_size):
                parts.append(infer(network, frames[first:first + self.batch_size], model.preprocessing,
                                   self.input_size, self.device, model.dtype))
                if self.progress is not None:
                    self.progress(min(first + self.batch_size, frames.shape[0]), frames.shape[0])
        return torch.cat(parts) if parts else torch.empty(0, self.height, self.width)

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        return self.normalizer.push(self.depth(frames))

    def finish(self) -> torch.Tensor:
        out = self.normalizer.finish()
        return out if out.shape[0] else torch.empty(0, self.height, self.width)

    def state(self, with_frames: bool = True) -> dict:
        state = self.normalizer.state(with_frames)
        state["meta"].update(input_size=self.input_size, height=self.height, width=self.width, kind=self.model.kind)
        return state

    def restore(self, state: dict, held: torch.Tensor | None = None) -> None:
        meta = state["meta"]
        mine = (self.input_size, self.height, self.width, self.model.kind)
        if (meta.get("input_size"), meta.get("height"), meta.get("width"), meta.get("kind")) != mine:
            raise StereoInputError("The saved Depth Anything V2 state belongs to another model, size or input_size; "
                                   "start the depth again.")
        self.normalizer.restore(state, held)


def estimate_depth(model: DepthAnythingV2Model, frames: torch.Tensor, input_size: int = DEFAULT_INPUT_SIZE,
                   normalize: str = "ema", ema: EmaSettings = EmaSettings(), scene_cuts: Iterable[int] = (),
                   batch_size: int = 4, progress: ProgressCallback | None = None) -> torch.Tensor:
    """Depth [N, H, W] float32 in 0..1 (1 = near) of in-memory frames [N, H, W, 3] (uint8 or float 0..1).

    normalize: "ema" (temporal, see TemporalMinMax), "clip" (min-max over all the frames), "frame"
    (each frame by its own min-max). A single image is min-max normalised in every mode.
    """
    if normalize not in NORMALIZE_CHOICES:
        raise StereoInputError(f"normalize must be one of {', '.join(NORMALIZE_CHOICES)}, got {normalize!r}.")
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[0] == 0:
        raise StereoInputError("'image' must be frames [N, H, W, 3] with at least one frame.")
    if frames.dtype != torch.uint8 and not bool(torch.isfinite(frames).all()):
        raise StereoInputError("'image' contains NaN or infinite values; re-run the node that made it.")
    count, height, width = frames.shape[:3]
    settings = {"ema": ema, "frame": EmaSettings(buffer=1, decay=0.0)}.get(normalize, ema)
    stream = DepthAnythingV2Stream(model, height, width, input_size, ema=settings, scene_cuts=scene_cuts,
                                   batch_size=batch_size, progress=progress)
    if normalize == "clip":
        raw = stream.depth(frames)
        return _normalized(raw, float(raw.min()), float(raw.max()))
    return torch.cat([stream.push(frames), stream.finish()])


# --- compute ------------------------------------------------------------------------------------------------


def real_config(size: str):
    """The transformers config of a published checkpoint (no weights, no download)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    kind = SIZE_NAMES.get(size, size)
    if kind not in ARCHITECTURES:
        raise StereoInputError(f"Depth Anything V2 size must be one of small, base, large, got {size!r}.")
    arch = ARCHITECTURES[kind]
    backbone = Dinov2Config(hidden_size=arch["hidden"], num_hidden_layers=arch["layers"],
                            num_attention_heads=arch["heads"], mlp_ratio=4, image_size=518, patch_size=14,
                            out_indices=arch["out_indices"], apply_layernorm=True, reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=arch["hidden"], patch_size=14,
                               fusion_hidden_size=arch["fusion"], neck_hidden_sizes=arch["neck"],
                               head_hidden_size=32, depth_estimation_type="relative")


def flops_per_frame(size: str, height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE) -> int:
    """Floating-point operations of one frame's forward pass (2 per multiply-add), counted by
    torch.utils.flop_counter on the meta device for a height x width frame at `input_size`."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import DepthAnythingForDepthEstimation

    config = real_config(size)
    model_height, model_width = model_input_size(height, width, input_size)
    with torch.device("meta"):
        network = DepthAnythingForDepthEstimation(config).eval()
        pixels = torch.empty(1, 3, model_height, model_width)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        network(pixel_values=pixels)
    return int(counter.get_total_flops())
