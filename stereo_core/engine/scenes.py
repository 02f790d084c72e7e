"""Scene splitting: a video cut at its hard scene cuts, each scene converted on its own, then joined.

At a hard cut nothing carries over (depth, its normalisation, the inpainting's carried frames), so
each scene is its own conversion over a frame range: DepthCrafter windows and min-max normalisation
per scene, warp, inpainting chunks, encoded pieces, in its own folder of the work store. The
scenes' pieces are then joined in order into the outputs, without re-encoding, and the audio is
muxed once over the whole.

A scene longer than `part_frames` is split further into parts, so that it too can be spread over
several workers. Parts overlap by `part_overlap` frames for depth only: each part's depth is aligned
to its predecessor's by a least-squares scale and shift over the shared frames, then cross-faded
into it over them, so the depth does not jump; the statistics (and so the normalisation) are the
scene's. Each part's stereo frames (warp, inpainting, encoding) then cover its own frames; the
inpainting starts afresh at a part's first frame, as it does at a cut.

The work is a set of tasks (`Task`) with dependencies, each idempotent over the shared work folder:
a finished task leaves a record and is not run again; an unfinished one resumes from its last
finished chunk. `convert_scenes` runs them in one process; `distributed.RayRunner` runs the same
tasks on Ray workers, with the same results.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..errors import StereoInputError
from ..video_io import FrameReader, Segment, VideoInfo
from .depth import DepthFrames, DepthStats
from .pipeline import Conversion, ConversionJob, ConversionResult, ConversionSettings, Models, Plan, Reporter
from .pipeline import claimed, finish_conversion, plan_conversion
from .sources import DepthSource
from .store import StageStore, WorkStore, settings_key, source_identity

log = logging.getLogger(__name__)

# Width of the pictures the cut detector compares (PySceneDetect's own default working width).
DETECT_WIDTH = 256


@dataclass(frozen=True)
class SceneSettings:
    threshold: float = 27.0  # PySceneDetect content detector: change in mean HSV that makes a cut
    min_scene_frames: int = 15  # no cut closer than this to the previous one
    part_frames: int = 2000  # scenes longer than this are split into parts (0: never)
    part_overlap: int = 24  # frames two parts' depth share, for alignment and cross-fade

    def check(self) -> None:
        if not self.threshold > 0:
            raise StereoInputError(f"The scene-cut threshold must be above 0, got {self.threshold} (27 is "
                                   f"PySceneDetect's default; lower finds more cuts).")
        if self.min_scene_frames < 1:
            raise StereoInputError(f"The minimum scene length must be at least 1 frame, got {self.min_scene_frames}.")
        if self.part_overlap < 1:
            raise StereoInputError(f"The overlap of a long scene's parts must be at least 1 frame, got "
                                   f"{self.part_overlap}: their depth is aligned on it.")
        if self.part_frames and self.part_frames < 3 * self.part_overlap:
            # Shorter parts could not hold the whole overlap with their predecessor in their own frames.
            raise StereoInputError(
                f"Scene parts of {self.part_frames} frames cannot overlap by {self.part_overlap}: make parts at least "
                f"three times the overlap long (or 0 to never split a scene).")


# --- finding the cuts --------------------------------------------------------------------------------


def require_scenedetect():
    try:
        import scenedetect
    except ImportError as error:
        raise StereoInputError("--split-scenes needs PySceneDetect: pip install scenedetect") from error
    return scenedetect


def detect_cuts(info: VideoInfo, stop: int, settings: SceneSettings,
                progress: Callable[[int, int], None] | None = None) -> list[int]:
    """First frames of the scenes after the first, among frames [0, stop): PySceneDetect's content
    detector over the decoded frames (numbered as FrameReader numbers them), shrunk to DETECT_WIDTH."""
    import av

    scenedetect = require_scenedetect()
    detector = scenedetect.ContentDetector(threshold=settings.threshold, min_scene_len=settings.min_scene_frames)
    stored_width, stored_height = (info.height, info.width) if info.rotation in (90, 270) else (info.width,
                                                                                                 info.height)
    width = min(stored_width, DETECT_WIDTH)
    height = max(2, round(stored_height * width / stored_width))
    fps = Fraction(info.fps)
    cuts, last = [], None
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= stop:
                break
            picture = frame.to_ndarray(format="bgr24", width=width, height=height)
            last = scenedetect.FrameTimecode(index, fps)
            cuts += detector.process_frame(last, picture)
            if progress and (index + 1) % 64 == 0:
                progress(index + 1, stop)
    if last is not None:
        cuts += detector.post_process(last)
    if progress:
        progress(stop, stop)
    return sorted({cut.frame_num for cut in cuts if 0 < cut.frame_num < stop})


def scene_cuts(plan: Plan, settings: SceneSettings, folder: Path, reporter: Reporter) -> list[int]:
    """The cuts of the plan's frames, detected once and kept in the work folder (`scenes.json`)."""
    key = settings_key(source_identity(plan.info.path), [plan.start, plan.stop], settings.threshold,
                       settings.min_scene_frames)
    store = StageStore(folder)
    saved = store.load_json("scenes.json")
    if saved is not None and saved.get("key") == key:
        return saved["cuts"]
    with reporter.bar("scenes: detect cuts", plan.stop) as bar:
        cuts = [cut for cut in detect_cuts(plan.info, plan.stop, settings, bar) if cut > plan.start]
    store.save_json("scenes.json", {"key": key, "cuts": cuts})
    return cuts


# --- scenes and parts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """Frames [start, stop) of a scene's output; its depth is estimated over [depth_start, depth_stop)."""

    index: int
    start: int
    stop: int
    depth_start: int
    depth_stop: int


@dataclass(frozen=True)
class Scene:
    index: int
    start: int
    stop: int
    parts: tuple[Part, ...]

    @property
    def frames(self) -> int:
        return self.stop - self.start

    @property
    def split(self) -> bool:
        return len(self.parts) > 1


def split_scene(start: int, stop: int, part_frames: int, overlap: int) -> tuple[Part, ...]:
    """Parts of equal length whose depth ranges (their frames plus the next part's first `overlap`)
    are at most `part_frames` long; one part when the scene fits."""
    length = stop - start
    if not part_frames or length <= part_frames:
        return (Part(0, start, stop, start, stop),)
    count = -(-length // (part_frames - overlap))
    bounds = [start + index * length // count for index in range(count + 1)]
    return tuple(Part(index, bounds[index], bounds[index + 1], bounds[index],
                      min(stop, bounds[index + 1] + overlap) if index + 1 < count else stop)
                 for index in range(count))


def plan_scenes(start: int, stop: int, cuts: list[int], settings: SceneSettings) -> list[Scene]:
    bounds = [start, *(cut for cut in cuts if start < cut < stop), stop]
    return [Scene(index, first, last, split_scene(first, last, settings.part_frames, settings.part_overlap))
            for index, (first, last) in enumerate(zip(bounds, bounds[1:]))]


# --- depth of a scene in parts -------------------------------------------------------------------------


def fit_scale_shift(pairs: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """Least-squares scale and shift taking x to y over all pairs of (x, y) values; scale 1 (a shift only)
    when x has no spread or the fit would turn depth upside down."""
    count = sum_x = sum_y = sum_xx = sum_xy = 0.0
    for x, y in pairs:
        x, y = x.double().flatten(), y.double().flatten()
        count += x.numel()
        sum_x += float(x.sum())
        sum_y += float(y.sum())
        sum_xx += float((x * x).sum())
        sum_xy += float((x * y).sum())
    mean_x, mean_y = sum_x / count, sum_y / count
    variance = sum_xx / count - mean_x * mean_x
    scale = (sum_xy / count - mean_x * mean_y) / variance if variance > 1e-12 else 1.0
    if not scale > 0:
        scale = 1.0
    # Rounded to float32, as the frames are scaled: a scene's statistics and its frames agree exactly.
    scale = float(torch.tensor(scale, dtype=torch.float32))
    return scale, float(torch.tensor(mean_y - scale * mean_x, dtype=torch.float32))


class SceneDepth(DepthFrames):
    """A split scene's depth (frames counted from the scene's start): each part's depth scaled and shifted
    onto its predecessor's, cross-faded over the frames they share. `parts(j)` gives part j's depth."""

    def __init__(self, scene: Scene, parts: Callable[[int], DepthFrames], scales: list[float], shifts: list[float],
                 stats: DepthStats | None = None):
        self.scene, self.scales, self.shifts = scene, scales, shifts
        self.frames = scene.frames
        self._load, self._parts = parts, {}
        if stats is not None:
            self.stats = stats

    def part(self, index: int) -> DepthFrames:
        if index not in self._parts:
            self._parts[index] = self._load(index)
        return self._parts[index]

    def own(self, index: int, start: int, stop: int) -> torch.Tensor:
        """Part `index`'s depth of scene frames [start, stop), as it estimated it."""
        offset = self.scene.start - self.scene.parts[index].depth_start
        return self.part(index).read(start + offset, stop + offset)

    def aligned(self, index: int, start: int, stop: int) -> torch.Tensor:
        """Part `index`'s depth of scene frames [start, stop), on its predecessors' scale."""
        return self.own(index, start, stop) * self.scales[index] + self.shifts[index]

    def pieces(self, start: int, stop: int) -> Iterator[tuple[int, int, int, bool]]:
        """(part, first, last, shared) runs of scene frames [start, stop) in order: the frames part j shares
        with part j - 1 (its first ones), then the frames only part j has."""
        first = self.scene.start
        for index, part in enumerate(self.scene.parts):
            shared_stop = self.scene.parts[index - 1].depth_stop if index else part.start
            for low, high, shared in ((part.start, shared_stop, True), (shared_stop, part.stop, False)):
                low, high = max(low - first, start), min(high - first, stop)
                if low < high:
                    yield index, low, high, shared

    def read(self, start: int, stop: int) -> torch.Tensor:
        out = []
        for index, low, high, shared in self.pieces(start, stop):
            own = self.aligned(index, low, high)
            if shared:  # cross-faded from the previous part's depth to this one's
                part = self.scene.parts[index]
                overlap = self.scene.parts[index - 1].depth_stop - part.start
                steps = torch.arange(low, high, dtype=torch.float32) - (part.start - self.scene.start) + 1
                weight = (steps / (overlap + 1)).view(-1, 1, 1)
                own = self.aligned(index - 1, low, high) * (1 - weight) + own * weight
            out.append(own)
        return torch.cat(out)

    def measure(self) -> DepthStats:
        """The scene's per-frame statistics: the parts' own, scaled (scaling by a positive factor and
        shifting keep the order of values: extremes and medians stay exact), and measured on the
        cross-faded frames."""
        parts = []
        for index, low, high, shared in self.pieces(0, self.frames):
            if shared:
                parts.append(DepthStats.of_frames(self.read(low, high)))
                continue
            offset = self.scene.start - self.scene.parts[index].depth_start
            own = self.part(index).stats
            inside = DepthStats(*(getattr(own, name)[low + offset:high + offset] for name in DepthStats.FIELDS))
            scale, shift = self.scales[index], self.shifts[index]
            parts.append(inside.map(lambda values, scale=scale, shift=shift: values * scale + shift))
        return DepthStats.join(parts)

    def close(self) -> None:
        for part in self._parts.values():
            part.close()


def align_parts(depth: SceneDepth) -> None:
    """Fit each part's scale and shift onto its predecessor's (already aligned) depth over their shared frames."""
    scene = depth.scene
    for index in range(1, len(scene.parts)):
        shared = range(scene.parts[index].start - scene.start, scene.parts[index - 1].depth_stop - scene.start)

        def pairs(index=index, shared=shared):
            for first in range(shared.start, shared.stop, 8):  # a few frames at a time: bounded memory
                last = min(first + 8, shared.stop)
                yield depth.own(index, first, last), depth.aligned(index - 1, first, last)

        depth.scales[index], depth.shifts[index] = fit_scale_shift(pairs())


class PartDepth(DepthFrames):
    """A part's view of its scene's depth: its own frames, the scene's statistics."""

    def __init__(self, scene_depth: DepthFrames, offset: int, frames: int):
        self.scene_depth, self.offset, self.frames = scene_depth, offset, frames
        self.stats = scene_depth.stats

    def read(self, start: int, stop: int) -> torch.Tensor:
        return self.scene_depth.read(self.offset + start, self.offset + stop)

    def stats_index(self, frames: slice) -> slice:
        return slice(frames.start + self.offset, frames.stop + self.offset)

    def close(self) -> None:
        self.scene_depth.close()


class AlignedSceneDepth(DepthSource):
    """A split scene's depth from a source whose depth depends on the frames estimated together: each
    part's own depth (the source over the part's depth range, kept in the part's folder by its "depth"
    task), scaled and shifted onto its predecessor's (kept as align-<key> in the scene's folder)."""

    def __init__(self, parts: DepthSource, work: "SceneWork", scene: Scene):
        self.parts, self.work, self.scene = parts, work, scene
        self.model_kinds = parts.model_kinds

    def part_plan(self, index: int) -> Plan:
        part = self.scene.parts[index]
        return self.work.plan_of(part.depth_start, part.depth_stop)

    def part_store(self, index: int) -> WorkStore:
        return WorkStore(self.work.part_folder(self.scene, self.scene.parts[index]))

    def key(self, plan: Plan, models: Models) -> str:
        keys = [self.parts.key(self.part_plan(part.index), models) for part in self.scene.parts]
        return settings_key(keys, [asdict(part) for part in self.scene.parts])

    def open(self, plan, reader, store, models, reporter) -> SceneDepth:
        scene, name = self.scene, f"align-{self.key(plan, models)}.safetensors"

        def part_depth(index: int) -> DepthFrames:
            return self.parts.open(self.part_plan(index), reader, self.part_store(index), models, reporter)

        kept = StageStore(store.create())
        saved = kept.load_tensors(name)
        if saved is not None:
            tensors = saved[0]
            return SceneDepth(scene, part_depth, tensors["scales"].tolist(), tensors["shifts"].tolist(),
                              DepthStats(*(tensors[name] for name in DepthStats.FIELDS)))
        depth = SceneDepth(scene, part_depth, [1.0] * len(scene.parts), [0.0] * len(scene.parts))
        align_parts(depth)
        depth.stats = depth.measure()
        for stale in kept.names("align-*"):
            kept.remove(stale)
        kept.save_tensors(name, {"scales": torch.tensor(depth.scales, dtype=torch.float64),
                                 "shifts": torch.tensor(depth.shifts, dtype=torch.float64),
                                 **depth.stats.tensors()})
        return depth


class PartOfScene(DepthSource):
    """A part's frames of its scene's depth: the part reads the scene's statistics and screen plane."""

    def __init__(self, scene: DepthSource, scene_plan: Plan, scene_store: WorkStore):
        self.scene, self.scene_plan, self.scene_store = scene, scene_plan, scene_store
        self.model_kinds = scene.model_kinds

    def key(self, plan: Plan, models: Models) -> str:
        return settings_key(self.scene.key(self.scene_plan, models), [plan.start, plan.stop])

    def open(self, plan, reader, store, models, reporter) -> DepthFrames:
        scene_depth = self.scene.open(self.scene_plan, reader, self.scene_store, models, reporter)
        return PartDepth(scene_depth, plan.start - self.scene_plan.start, plan.frames)


# --- the tasks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One unit of work: "convert" a whole scene; for a split scene, each part's "depth", then the
    scene's "align" (parts' scales and the scene's statistics), then each part's "right" (stereo frames)."""

    kind: str
    scene: int
    part: int | None = None

    def describe(self, scenes: list[Scene]) -> str:
        scene = scenes[self.scene]
        text = f"scene {self.scene + 1}/{len(scenes)}"
        if self.part is not None:
            text += f" part {self.part + 1}/{len(scene.parts)}"
        return text + ("" if self.kind == "convert" else f" ({self.kind})")


@dataclass
class TaskResult:
    task: Task
    segments: dict[str, list[Segment]] | None  # the encoded pieces, for "convert" and "right"
    notices: list[str]
    reused: bool  # finished by an earlier run
    comfort: tuple[torch.Tensor, ...] | None = None  # per frame: nearest, median, farthest disparity (px)


class _TaskReporter(Reporter):
    """A task's bars and notices, named after it; its notices are also handed back with its result (a
    remote worker's reach the driver that way)."""

    def __init__(self, reporter: Reporter, label: str):
        self.reporter, self.label, self.notices = reporter, label, []

    def bar(self, name: str, total: int):
        return self.reporter.bar(f"{self.label}: {name}", total)

    def notice(self, message: str) -> None:
        self.notices.append(f"{self.label}: {message}")
        self.reporter.notice(self.notices[-1])


class SceneWork:
    """A job's scenes and the tasks that convert them, over a work folder every worker reaches."""

    def __init__(self, plan: Plan, scenes: list[Scene]):
        self.plan, self.scenes = plan, scenes
        self.folder = Path(plan.job.work_dir)

    # layout

    def tasks(self) -> dict[Task, tuple[Task, ...]]:
        """Every task with the tasks it needs finished first, in a good order to start them: the parts'
        depth first (the split scenes wait on it), then the longest scenes."""
        part_depth = self.plan.depth.depends_on_range  # else the scene's depth is the source's over its frames
        tasks: dict[Task, tuple[Task, ...]] = {}
        split = [scene for scene in self.scenes if scene.split]
        for scene in sorted(split, key=lambda scene: -scene.frames):
            if part_depth:
                for part in scene.parts:
                    tasks[Task("depth", scene.index, part.index)] = ()
        for scene in sorted(split, key=lambda scene: -scene.frames):
            needs = tuple(Task("depth", scene.index, part.index) for part in scene.parts) if part_depth else ()
            tasks[Task("align", scene.index)] = needs
        for scene in sorted(self.scenes, key=lambda scene: -scene.frames):
            if scene.split:
                for part in scene.parts:
                    tasks[Task("right", scene.index, part.index)] = (Task("align", scene.index),)
            else:
                tasks[Task("convert", scene.index)] = ()
        return tasks

    def frames_of(self, task: Task) -> int:
        """Output frames a finished task completes (for progress)."""
        scene = self.scenes[task.scene]
        if task.kind == "convert":
            return scene.frames
        if task.kind == "right":
            return scene.parts[task.part].stop - scene.parts[task.part].start
        return 0

    def scene_folder(self, scene: Scene) -> Path:
        return self.folder / f"scene-{scene.index:05d}-{scene.start}-{scene.stop}"

    def part_folder(self, scene: Scene, part: Part) -> Path:
        return self.scene_folder(scene) / f"part-{part.index:03d}-{part.start}-{part.stop}"

    def plan_of(self, start: int, stop: int) -> Plan:
        """The plan of frames [start, stop), placed in the whole's output."""
        return replace(self.plan, start=start, stop=stop, origin=self.plan.start)

    # running one task

    def run(self, task: Task, models: Models, device, reporter: Reporter) -> TaskResult:
        """Run one task (or find it finished by an earlier run); its dependencies must be finished."""
        scene = self.scenes[task.scene]
        folder = self.scene_folder(scene) if task.part is None else self.part_folder(scene, scene.parts[task.part])
        reporter = _TaskReporter(reporter, task.describe(self.scenes))
        step = getattr(self, f"_{task.kind}")(scene, task, models, device, reporter, folder)
        key = step.key
        store = StageStore(folder)
        record = store.load_json(f"done-{task.kind}.json")
        if record is not None and record.get("key") == key:
            segments = self._segments_of(record)
            if segments is not None or task.kind in ("depth", "align"):
                comfort = record.get("comfort")
                if self.frames_of(task):
                    reporter.notice("finished by an earlier run")
                return TaskResult(task, segments, reporter.notices, True,
                                  None if comfort is None else tuple(torch.tensor(values) for values in comfort))
        # Who works on the task (host and process): for a person watching a cluster run, and for tests.
        store.save_json("worker.json", {"host": socket.gethostname(), "pid": os.getpid(), "task": asdict(task)})
        result = step.run()
        segments, comfort = (None, None) if result is None else (result.segments, result.comfort)
        store.save_json(f"done-{task.kind}.json", {
            "key": key,
            "segments": None if segments is None else {
                kind: [[str(piece.path.relative_to(self.folder)), str(piece.start)] for piece in pieces]
                for kind, pieces in segments.items()},
            "comfort": None if comfort is None else [values.tolist() for values in comfort]})
        return TaskResult(task, segments, reporter.notices, False, comfort)

    def _segments_of(self, record: dict) -> dict[str, list[Segment]] | None:
        if record.get("segments") is None:
            return None
        segments = {kind: [Segment(self.folder / path, Fraction(start)) for path, start in pieces]
                    for kind, pieces in record["segments"].items()}
        if not all(piece.path.is_file() for pieces in segments.values() for piece in pieces):
            return None
        return segments

    def _conversion_step(self, conversion: Conversion) -> "_Step":
        plan = conversion.plan
        # The range: a part's depth key is its scene's. The origin places the pieces in the whole video.
        return _Step(conversion.run, settings_key(conversion.output_key(), [plan.start, plan.stop, plan.origin]))

    def _convert(self, scene: Scene, task: Task, models, device, reporter, folder) -> "_Step":
        conversion = Conversion(self.plan_of(scene.start, scene.stop), models, device, reporter, WorkStore(folder))
        return self._conversion_step(conversion)

    def _depth(self, scene: Scene, task: Task, models, device, reporter, folder) -> "_Step":
        depth = AlignedSceneDepth(self.plan.depth, self, scene)
        plan, store = depth.part_plan(task.part), depth.part_store(task.part)

        def run():
            with FrameReader(self.plan.info) as reader:
                self.plan.depth.open(plan, reader, store, models, reporter).close()
        return _Step(run, self.plan.depth.key(plan, models))

    def scene_depth(self, scene: Scene) -> tuple[DepthSource, Plan, WorkStore]:
        """A split scene's depth source, its plan and its store (its alignment must be finished where the
        source's depth depends on the range; otherwise the scene's depth is the source's over its frames)."""
        plan, store = self.plan_of(scene.start, scene.stop), WorkStore(self.scene_folder(scene))
        source = AlignedSceneDepth(self.plan.depth, self, scene) if self.plan.depth.depends_on_range \
            else self.plan.depth
        return source, plan, store

    def _align(self, scene: Scene, task: Task, models, device, reporter, folder) -> "_Step":
        source, plan, store = self.scene_depth(scene)

        def run():
            with FrameReader(self.plan.info) as reader:
                source.open(plan, reader, store, models, reporter).close()
        return _Step(run, source.key(plan, models))

    def _right(self, scene: Scene, task: Task, models, device, reporter, folder) -> "_Step":
        part = scene.parts[task.part]
        conversion = Conversion(self.plan_of(part.start, part.stop), models, device, reporter, WorkStore(folder),
                                depth=PartOfScene(*self.scene_depth(scene)))
        return self._conversion_step(conversion)

    # the whole

    def _output_tasks(self) -> Iterator[tuple[int, Task]]:
        """The tasks that make the outputs' frames, in order, with their first frame (from the plan's start)."""
        for scene in self.scenes:
            if scene.split:
                for part in scene.parts:
                    yield part.start - self.plan.start, Task("right", scene.index, part.index)
            else:
                yield scene.start - self.plan.start, Task("convert", scene.index)

    def segments(self, results: dict[Task, TaskResult]) -> dict[str, list[Segment]]:
        """Every output's pieces in the order of their frames."""
        joined: dict[str, list[Segment]] = {kind: [] for kind in self.plan.job.outputs}
        for _, task in self._output_tasks():
            for kind, pieces in results[task].segments.items():
                joined[kind].extend(pieces)
        return joined

    def comfort(self, results: dict[Task, TaskResult]) -> list[tuple[int, tuple[torch.Tensor, ...]]]:
        """The comfort report's parts: (first frame, per-frame disparity extremes) of every scene or part."""
        return [(first, results[task].comfort) for first, task in self._output_tasks()]


@dataclass
class _Step:
    """What a task runs (a conversion's result, or None for depth work) and the key of its result."""

    run: Callable[[], ConversionResult | None]
    key: str


# --- running them -------------------------------------------------------------------------------------


class LocalRunner:
    """The tasks one after another in this process."""

    def __init__(self, models: Models, device):
        self.models, self.device = models, device

    def run(self, work: SceneWork, reporter: Reporter) -> dict[Task, TaskResult]:
        results = {}
        for task in work.tasks():
            results[task] = work.run(task, self.models, self.device, reporter)
        return results

    def close(self) -> None:
        pass


def convert_scenes(job: ConversionJob, settings: ConversionSettings, scene_settings: SceneSettings, models: Models,
                   device: torch.device | str = "cpu", reporter: Reporter | None = None, runner=None,
                   plan: Plan | None = None) -> Plan:
    """Convert one video scene by scene (see the module's description); `runner` runs the tasks (default:
    in this process). Returns the plan of the whole (`plan`: the job's plan where the caller has it)."""
    reporter = reporter or Reporter()
    scene_settings.check()
    plan = plan or plan_conversion(job, settings)
    store = WorkStore(job.work_dir, job.option("work_dir"))
    with claimed(job, store, reporter) as finished:  # the driver holds the folder; workers claim tasks in it
        if not finished:
            _convert_scenes(plan, scene_settings, models, device, reporter, runner, store)
    return plan


def _convert_scenes(plan: Plan, scene_settings: SceneSettings, models: Models, device, reporter: Reporter, runner,
                    store: WorkStore) -> None:
    cuts = scene_cuts(plan, scene_settings, store.create(), reporter)
    scenes = plan_scenes(plan.start, plan.stop, cuts, scene_settings)
    parts = sum(len(scene.parts) for scene in scenes if scene.split)
    reporter.notice(f"{len(scenes)} scene{'s' if len(scenes) != 1 else ''}"
                    + (f" ({parts} parts of long scenes)" if parts else ""))
    work = SceneWork(plan, scenes)
    results = (runner or LocalRunner(models, device)).run(work, reporter)
    finish_conversion(plan, work.segments(results), work.comfort(results), reporter, store)

