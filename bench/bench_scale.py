"""Where a conversion's time goes, per frame, and what scene splitting on 1, 8 and 64 GPUs would give.

    .venv/bin/python bench/bench_scale.py [--frames 48] [--size 256x144] [--real-frames 24] [--ray 2]

1. The whole engine, scene by scene (--split-scenes), on a synthetic clip with hard cuts and the tiny
   random-weight models of the tests (real architectures) on this CPU: seconds per frame in each stage
   (own time: a stage's time excludes the stages it calls), at --size.
2. The parts that do not depend on the models, at the real size (1920x1080 in, 3840x1080 side-by-side
   out), on this CPU: decoding, cut detection, warp, composing and H.264 encoding, joining and audio.
3. Optionally (--ray N) the same scene-split conversion as 1. on a local Ray with N workers, for the
   wall time against one process (on a small machine the workers share its cores).
4. The published GPU figures (StereoCrafter about 1 hour per minute of video on one large GPU;
   DepthCrafter about 0.47 s per 1024x576 frame on an A100) extrapolated to one hour of 1080p at 24 fps
   on 1, 8 and 64 GPUs, with the serial parts measured in 2. and the longest task a scene part allows,
   and the traffic to the shared work folder per frame.
"""

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from stereo_core import inpainting, video_io  # noqa: E402
from stereo_core.depthcrafter import DepthCrafterSettings  # noqa: E402
from stereo_core.engine import ConversionJob, ConversionSettings, LoadedModels, OutputSettings, Reporter  # noqa: E402
from stereo_core.engine import depth as depth_stage  # noqa: E402
from stereo_core.engine import pipeline, scenes, store  # noqa: E402
from stereo_core.inpainting import InpaintSettings  # noqa: E402

FPS = 24
HOUR_FRAMES = 3600 * FPS
# Published figures (see docs/scale.md for the sources' wording).
STEREOCRAFTER_S_PER_FRAME = 3600 / (60 * FPS)  # about one hour per minute of video, one large GPU
DEPTHCRAFTER_S_PER_FRAME = 0.47  # 1024x576, A100
PUBLISHED_PIXELS = 1024 * 576
HD_PIXELS = 1920 * 1080


class StageClock:
    """Own time per stage: functions wrapped in a stage; time spent in nested wrapped calls is theirs."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._stack, self._undo = [], []

    def __enter__(self):
        self.instrument()
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)

    def wrap(self, owner, name, stage):
        original = getattr(owner, name)
        clock = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            clock._stack.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                clock.seconds[stage] += elapsed - clock._stack.pop()
                if clock._stack:
                    clock._stack[-1] += elapsed
        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def instrument(self):
        self.wrap(video_io.FrameReader, "read", "decode (source, depth video)")
        self.wrap(scenes, "detect_cuts", "cut detection")
        self.wrap(depth_stage.DepthCrafterFrames, "__init__", "depth: DepthCrafter passes")
        self.wrap(depth_stage.DepthCrafterFrames, "read", "depth: decoded again for the warp")
        self.wrap(scenes, "align_parts", "depth: aligning parts")
        self.wrap(scenes.SceneDepth, "measure", "depth: aligning parts")
        self.wrap(pipeline.Conversion, "warp", "warp + occlusion mask")
        self.wrap(inpainting.ChunkInpainter, "__call__", "inpainting")
        self.wrap(pipeline, "finish_frames", "inpainting")
        self.wrap(pipeline._Outputs, "write", "compose + encode (H.264)")
        self.wrap(pipeline._Outputs, "close", "compose + encode (H.264)")
        self.wrap(pipeline, "join_segments", "join pieces + audio")
        self.wrap(store.StageStore, "save_tensors", "work store writes")
        self.wrap(store.StageStore, "load_tensors", "work store reads")


def print_stages(title, clock, total, frames):
    print(f"\n{title}")
    print(f"  {'stage':44s} {'s total':>9s} {'ms/frame':>10s} {'share':>7s}")
    rows = sorted(clock.seconds.items(), key=lambda item: -item[1])
    rows.append(("other (planning, loading, compiling, Python)", total - sum(clock.seconds.values())))
    for stage, seconds in rows:
        print(f"  {stage:44s} {seconds:9.2f} {1000 * seconds / frames:10.1f} {100 * seconds / total:6.1f}%")
    print(f"  {'total':44s} {total:9.2f} {1000 * total / frames:10.1f}")


def scene_clip(path, frames, width, height):
    from test_scenes import make_scene_video

    lengths = [frames // 3, frames // 3, frames - 2 * (frames // 3)]
    return make_scene_video(path, lengths, width=width, height=height)


def tiny_models(folder):
    from tiny_models import build_model_tree

    from stereo_core.video_diffusion import load_video_diffusion

    tree = build_model_tree(folder / "stereocrafter")
    return LoadedModels({kind: load_video_diffusion(kind, tree["svd"], tree[kind]) for kind in
                         ("depthcrafter", "stereocrafter")})


def engine_breakdown(folder, frames, width, height, models):
    source = scene_clip(folder / "tiny.mp4", frames, width, height)
    settings = ConversionSettings(depth=DepthCrafterSettings(window=24, overlap=8), inpaint=InpaintSettings(),
                                  output=OutputSettings(segment_frames=24))
    job = ConversionJob(source=source, outputs={"stereo": folder / "tiny_sbs.mp4"}, work_dir=folder / "tiny.work")
    with StageClock() as clock:
        started = time.perf_counter()
        scenes.convert_scenes(job, settings, scenes.SceneSettings(), models)
        total = time.perf_counter() - started
    print_stages(f"1. The engine, --split-scenes, tiny models on the CPU: {frames} frames {width}x{height}, 3 scenes, "
                 f"{torch.get_num_threads()} torch thread(s)", clock, total, frames)
    return source, settings


def real_size_io(folder, frames):
    """Decode, detect, warp, compose, encode and join at 1080p, with a given depth video (no models)."""
    from test_scenes import scene_depth_video

    source = scene_clip(folder / "hd.mp4", frames, 1920, 1080)
    depth = scene_depth_video(folder / "hd_depth.mp4", [frames // 3, frames // 3, frames - 2 * (frames // 3)],
                              [(0.1, 0.6), (0.3, 0.9), (0.2, 0.7)], width=960, height=540)
    settings = ConversionSettings(inpaint=None, output=OutputSettings(segment_frames=24))
    job = ConversionJob(source=source, outputs={"stereo": folder / "hd_sbs.mp4"}, work_dir=folder / "hd.work",
                        depth_video=depth)
    with StageClock() as clock:
        started = time.perf_counter()
        scenes.convert_scenes(job, settings, scenes.SceneSettings(), LoadedModels({}))
        total = time.perf_counter() - started
    print_stages(f"2. Without the models, real size: {frames} frames 1920x1080 in, 3840x1080 side-by-side out "
                 f"(a given depth video)", clock, total, frames)
    encoded = (folder / "hd_sbs.mp4").stat().st_size / frames
    print(f"  encoded side-by-side: {encoded / 1e3:.0f} kB/frame (synthetic pictures: real footage is larger)")
    return {stage: seconds / frames for stage, seconds in clock.seconds.items()}


def ray_wall_time(folder, source, settings, models, workers):
    from stereo_core.engine.distributed import RayRunner, RaySession, WorkerSpec

    job = ConversionJob(source=source, outputs={"stereo": folder / "ray_sbs.mp4"}, work_dir=folder / "ray.work")
    local_job = ConversionJob(source=source, outputs={"stereo": folder / "one_sbs.mp4"}, work_dir=folder / "one.work")
    started = time.perf_counter()
    scenes.convert_scenes(local_job, settings, scenes.SceneSettings(), models)
    one = time.perf_counter() - started
    session = RaySession()
    started = time.perf_counter()
    session.open()
    opened = time.perf_counter() - started
    try:
        spec = WorkerSpec(models=lambda device: models, device=lambda: torch.device("cpu"),
                          threads=torch.get_num_threads())
        started = time.perf_counter()
        scenes.convert_scenes(job, settings, scenes.SceneSettings(), models, reporter=Reporter(),
                              runner=RayRunner(session, spec, workers=workers))
        distributed = time.perf_counter() - started
    finally:
        session.close()
    print(f"\n3. Wall time, the same conversion: one process {one:.1f} s; local Ray with {workers} workers "
          f"{distributed:.1f} s (+{opened:.1f} s to start Ray), on {os.cpu_count()} CPU cores")


def extrapolate(io_per_frame):
    """One hour of 1080p on 1, 8 and 64 GPUs from the published per-frame figures."""
    serial = io_per_frame.get("cut detection", 0.0) + io_per_frame.get("join pieces + audio", 0.0)
    cpu_side = sum(seconds for stage, seconds in io_per_frame.items()
                   if stage.startswith(("decode", "compose", "work store", "warp")))
    inpaint_published = STEREOCRAFTER_S_PER_FRAME - DEPTHCRAFTER_S_PER_FRAME
    scale = HD_PIXELS / PUBLISHED_PIXELS
    cases = {
        "as published": STEREOCRAFTER_S_PER_FRAME,
        "1080p, inpainting x pixels": DEPTHCRAFTER_S_PER_FRAME + inpaint_published * scale,
    }
    print(f"\n4. One hour of 1080p at {FPS} fps ({HOUR_FRAMES} frames) from the published GPU figures")
    print(f"  per frame on one GPU: DepthCrafter {DEPTHCRAFTER_S_PER_FRAME:.2f} s (its working size, 1024x576, at "
          f"1080p too); StereoCrafter's whole pipeline {STEREOCRAFTER_S_PER_FRAME:.2f} s, so inpainting and the rest "
          f"{inpaint_published:.2f} s, x{scale:.2f} for 1080p's pixels")
    print(f"  measured here (CPU, 1080p): serial on the driver (cut detection + final join) {1000 * serial:.1f} ms "
          f"per frame; per worker besides the models (decode, warp, compose, encode) {1000 * cpu_side:.0f} ms")
    print(f"  {'GPU s/frame':36s} {'GPUs':>5s} {'GPU time/N':>11s} {'+ serial':>9s} {'parts 2000':>11s} "
          f"{'parts 500':>10s}")
    for name, per_frame in cases.items():
        for gpus in (1, 8, 64):
            ideal = HOUR_FRAMES * per_frame / gpus
            with_serial = ideal + HOUR_FRAMES * serial
            # The longest chain a long scene allows: one part's depth, then its stereo frames.
            chains = [max(with_serial, part * per_frame + HOUR_FRAMES * serial) for part in (2000, 500)]
            print(f"  {f'{name} ({per_frame:.2f} s)':36s} {gpus:5d} {hours(ideal):>11s} {hours(with_serial):>9s} "
                  f"{hours(chains[0]):>11s} {hours(chains[1]):>10s}")
    hd_eye = HD_PIXELS * 3
    carry = 3 * hd_eye * 4 / 20  # float32 carried frames, 3 per 20-frame inpainting chunk
    latents = 4 * (1024 // 8) * (576 // 8) * 4
    windows = latents * 70 / 45  # 70-frame windows every 45 frames
    written = hd_eye + carry + latents + windows + 4 * 1024
    print(f"  written to the shared work folder per frame at 1080p: right eye {hd_eye / 1e6:.1f} MB + carried "
          f"frames {carry / 1e6:.1f} MB + depth latents {(latents + windows + 4096) / 1e6:.2f} MB = "
          f"{written / 1e6:.1f} MB")
    for name, per_frame in cases.items():
        rates = ", ".join(f"{gpus} GPU{'s' if gpus > 1 else ''} {gpus * written / per_frame / 1e6:.0f} MB/s"
                          for gpus in (1, 8, 64))
        print(f"    {name}: {rates}")


def hours(seconds):
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="256x144")
    parser.add_argument("--real-frames", type=int, default=24, help="frames of the 1080p run (0: skip it)")
    parser.add_argument("--ray", type=int, default=0, metavar="WORKERS", help="also time a local Ray run")
    args = parser.parse_args()
    width, height = (int(value) for value in args.size.split("x"))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        models = tiny_models(folder)
        source, settings = engine_breakdown(folder, args.frames, width, height, models)
        io_per_frame = real_size_io(folder, args.real_frames) if args.real_frames else {}
        if args.ray:
            ray_wall_time(folder, source, settings, models, args.ray)
        extrapolate(io_per_frame)


if __name__ == "__main__":
    main()
