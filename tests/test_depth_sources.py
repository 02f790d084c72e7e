"""The depth seam: sources chosen once by the plan, a new depth model plugged in by registering it, and
resuming without loading what a finished stage needed."""

import shutil
from contextlib import contextmanager

import pytest
import torch
from synthetic_video import make_video
from test_engine import DEPTH, encoded, joined  # noqa: F401 (encoded is a fixture)

from stereo_core import model_files
from stereo_core.engine import (
    DEPTH_MODELS,
    ConversionJob,
    ConversionSettings,
    DepthSource,
    DepthStream,
    LoadedModels,
    OutputSettings,
    Reporter,
    StreamedDepthSource,
    convert,
    plan_conversion,
    register_depth_model,
)
from stereo_core.engine import depth as engine_depth
from stereo_core.engine.depth import DepthFrames, DepthStats
from stereo_core.errors import StereoInputError
from stereo_core.inpainting import InpaintSettings

FRAMES, WIDTH, HEIGHT = 8, 96, 64


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("sources") / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT)


class RecordingModels(LoadedModels):
    """Loaded models that record which kinds a run asked for; `refuse` kinds fail when asked for."""

    def __init__(self, models, refuse=()):
        super().__init__(models)
        self.asked, self.refuse = [], set(refuse)

    def get(self, kind):
        self.asked.append(kind)
        if kind in self.refuse:
            raise AssertionError(f"{kind} was loaded")
        return super().get(kind)


class Notices(Reporter):
    def __init__(self):
        self.notices, self.bars = [], []

    def bar(self, name, total):
        self.bars.append(name)
        return super().bar(name, total)

    def notice(self, message):
        self.notices.append(message)


def test_a_resume_whose_depth_and_right_eye_are_finished_loads_no_depth_model(source, tmp_path, depthcrafter_model,
                                                                               stereocrafter_model):
    models = {model_files.DEPTHCRAFTER: depthcrafter_model, model_files.STEREOCRAFTER: stereocrafter_model}
    settings = ConversionSettings(depth=DEPTH, inpaint=InpaintSettings(steps=1, frames_chunk=4, overlap=1), seed=1,
                                  output=OutputSettings(segment_frames=3))
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "a.mp4"}, work_dir=tmp_path / "work",
                        keep_work=True)
    first = RecordingModels(models)
    convert(job, settings, first)
    assert model_files.DEPTHCRAFTER in first.asked
    # Killed after the right eye was kept, before its pieces were encoded.
    for piece in (tmp_path / "work").glob("encode-*"):
        for path in piece.iterdir():
            path.unlink()
        piece.rmdir()
    (tmp_path / "a.mp4").unlink()
    again = RecordingModels(models, refuse=[model_files.DEPTHCRAFTER])
    convert(job, settings, again)
    assert model_files.DEPTHCRAFTER not in again.asked
    assert (tmp_path / "a.mp4").is_file()


def test_a_run_resumed_in_the_depth_stage_says_where(source, tmp_path, depthcrafter_model, monkeypatch):
    monkeypatch.setattr(engine_depth, "PIECE_FRAMES", 4)  # two kept pieces per pass over the 8 frames
    models = LoadedModels({model_files.DEPTHCRAFTER: depthcrafter_model})
    settings = ConversionSettings(depth=DEPTH, inpaint=None, seed=1)
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "a.mp4"}, work_dir=tmp_path / "work",
                        keep_work=True)
    convert(job, settings, models)
    (depth_folder,) = (tmp_path / "work").glob("depth-*")
    cases = [(["stats-0000004.safetensors"], "depth: decoding resumes at frame 4"),
             (["window-000001.safetensors", "stats-0000000.safetensors", "stats-0000004.safetensors"],
              "depth: windows resume at window 2 of 2 (frame 4)"),
             (["encode-0000004.safetensors", "noise.safetensors", "window-000000.safetensors",
               "window-000001.safetensors", "stats-0000000.safetensors", "stats-0000004.safetensors"],
              "depth: encoding resumes at frame 4")]
    for removed, line in cases:
        for name in removed:
            (depth_folder / name).unlink()
        (tmp_path / "a.mp4").unlink()
        reporter = Notices()
        convert(job, settings, models, reporter=reporter)
        assert line in reporter.notices, (line, reporter.notices)


# --- a depth model plugged in by registering it ----------------------------------------------------------


class RampFrames(DepthFrames):
    """A left-to-right ramp (far at the left), one frame per frame; its statistics measured once."""

    def __init__(self, frames):
        self.frames = frames
        self.stats = DepthStats.of_frames(self.read(0, frames))

    def read(self, start, stop):
        return torch.linspace(0, 1, 16).view(1, 1, 16).repeat(stop - start, 12, 1)


class RampSource(DepthSource):
    name = "test-ramp"
    stages = ("depth: ramp",)

    def key(self, plan, models):
        return f"ramp-{plan.start}-{plan.stop}"

    def open(self, plan, reader, store, models, reporter):
        with reporter.bar(self.stages[0], plan.frames) as bar:
            depth = RampFrames(plan.frames)
            bar(plan.frames, plan.frames)
        return depth


@pytest.fixture
def ramp_model():
    register_depth_model(RampSource)
    yield RampSource.name
    del DEPTH_MODELS[RampSource.name]


def test_a_registered_depth_model_is_chosen_by_name_and_runs_end_to_end(source, tmp_path, ramp_model, encoded):
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "a.mp4", "depth": tmp_path / "d.mp4"},
                        work_dir=tmp_path / "work")
    settings = ConversionSettings(depth_model=ramp_model, inpaint=None)
    plan = plan_conversion(job, settings)
    assert plan.stages[0] == "depth: ramp" and plan.model_kinds == ()
    reporter = Notices()
    convert(job, settings, LoadedModels({}), reporter=reporter, plan=plan)
    assert reporter.bars[0] == "depth: ramp"
    depth = joined(encoded, "depth")[..., 0].float()
    assert depth.shape[0] == FRAMES and depth[:, :, 0].max() < depth[:, :, -1].min(), "the ramp is the depth"


def test_an_unknown_depth_model_is_one_clear_error(source, tmp_path, capsys):
    with pytest.raises(StereoInputError, match="Unknown depth model 'nope'; choose one of: depth-anything-v2, "
                                                 "depthcrafter, video-depth-anything"):
        ConversionSettings(depth_model="nope").check()
    from stereo_core import cli

    with pytest.raises(SystemExit):
        cli.main([str(source), "--depth-model", "nope"])
    error = capsys.readouterr().err
    assert "invalid choice: 'nope' (choose from 'depth-anything-v2', 'depthcrafter', 'video-depth-anything')" in error


def test_an_unavailable_depth_model_says_why(ramp_model, monkeypatch):
    monkeypatch.setattr(RampSource, "unavailable", classmethod(lambda cls: "it needs the package 'ramps'."))
    with pytest.raises(StereoInputError, match="The depth model 'test-ramp' cannot run here: it needs the package"):
        ConversionSettings(depth_model=ramp_model).check()


# --- a streaming depth model (as Video Depth Anything and Depth Anything V2 plug in) ---------------------


class LaggedMeanStream(DepthStream):
    """A toy streaming model: a frame's depth is an exponential average of the grey pictures so far, given
    out two frames late (as a windowed model holds back the frames its next window blends)."""

    def __init__(self):
        self.average, self.held = None, torch.empty(0, 12, 16)

    def feed(self, frames):
        grey = torch.nn.functional.interpolate(frames.mean(-1, keepdim=True).permute(0, 3, 1, 2), size=(12, 16),
                                               mode="area")[:, 0]
        out = []
        for frame in grey:
            self.average = frame if self.average is None else 0.5 * self.average + 0.5 * frame
            out.append(self.average)
        self.held = torch.cat([self.held, torch.stack(out)])
        ready, self.held = self.held[:-2], self.held[-2:]
        return ready

    def finish(self):
        return self.held

    def state(self):
        return {"held": self.held, "average": self.average}

    def restore(self, state):
        self.held, self.average = state["held"], state["average"]


class LaggedMeanSource(StreamedDepthSource):
    name = "test-lagged-mean"
    runs = []  # one entry per stream started (a model load, for a real model)

    def identity(self, plan, models):
        return ["lagged-mean", 1]

    def stream(self, plan, models):
        self.runs.append(plan.start)
        return LaggedMeanStream()


@pytest.fixture
def streamed_model(monkeypatch):
    monkeypatch.setattr(engine_depth, "PIECE_FRAMES", 3)  # pieces of 3, 3 and 2 frames
    register_depth_model(LaggedMeanSource)
    LaggedMeanSource.runs.clear()
    yield LaggedMeanSource.name
    del DEPTH_MODELS[LaggedMeanSource.name]


def test_a_streamed_depth_model_is_kept_per_piece_and_read_back_as_the_whole_clip_run(source, tmp_path,
                                                                                      streamed_model):
    from stereo_core.engine.depth import StreamedDepthFrames
    from stereo_core.engine.store import StageStore
    from stereo_core.video_io import FrameReader, probe_video, read_video

    whole = LaggedMeanStream()
    raw = torch.cat([whole.feed(read_video(source).frames), whole.finish()])
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    with FrameReader(probe_video(source)) as reader:
        depth = StreamedDepthFrames(LaggedMeanStream, reader, 0, FRAMES, StageStore(tmp_path / "depth"),
                                    Reporter().bar, print)
        assert sorted(path.name for path in (tmp_path / "depth").iterdir()) == [
            "raw-0000000.safetensors", "raw-0000003.safetensors", "raw-0000006.safetensors"]
        torch.testing.assert_close(depth.read(0, FRAMES), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(depth.read(2, 5), expected[2:5], rtol=0, atol=1e-6)  # across pieces
        torch.testing.assert_close(depth.stats.high, expected.flatten(1).amax(1), rtol=0, atol=1e-6)


@contextmanager
def killed_writing(name: str):
    """A run killed just before the store writes `name` (a piece's depth: the state after it is written, the one
    before it not yet removed), as a SIGKILL there would leave the store."""
    from stereo_core.engine.store import StageStore

    save = StageStore.save_tensors

    def save_or_die(store, file_name, *args, **kwargs):
        if file_name == name:
            raise KeyboardInterrupt
        return save(store, file_name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StageStore, "save_tensors", save_or_die)
        yield


def test_a_streamed_depth_model_resumes_to_the_same_video_and_a_finished_one_is_not_run(source, tmp_path,
                                                                                         streamed_model, encoded):
    settings = ConversionSettings(depth_model=streamed_model, inpaint=None)
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "a.mp4", "depth": tmp_path / "d.mp4"},
                        work_dir=tmp_path / "work", keep_work=True)
    plan = plan_conversion(job, settings)
    assert plan.stages == ("depth: estimate", "stereo: warp, inpaint, encode")
    convert(job, settings, LoadedModels({}))
    uninterrupted = {kind: joined(encoded, kind) for kind in ("stereo", "depth")}
    (depth_folder,) = (tmp_path / "work").glob("depth-*")

    def again():
        for path in (tmp_path / "a.mp4", tmp_path / "d.mp4"):
            path.unlink(missing_ok=True)
        for folder in (tmp_path / "work").glob("encode-*"):
            shutil.rmtree(folder)  # the encoded pieces read the depth again
        encoded.clear()
        reporter = Notices()
        convert(job, settings, LoadedModels({}), reporter=reporter)
        assert all(torch.equal(joined(encoded, kind), frames) for kind, frames in uninterrupted.items())
        return reporter.notices

    shutil.rmtree(depth_folder)
    with killed_writing("raw-0000006.safetensors"), pytest.raises(KeyboardInterrupt):  # in the last piece
        again()
    assert "depth: estimation resumes at frame 6" in again()
    assert len(LaggedMeanSource.runs) == 3
    again()
    assert len(LaggedMeanSource.runs) == 3, "finished depth starts no model"


def test_engine_messages_name_options_in_the_faces_words(source, tmp_path):
    from stereo_core.engine import WorkStore

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StereoInputError, match="Choose a writable place with ComfyUI's --output-directory"):
        WorkStore(blocker / "work", "ComfyUI's --output-directory").create()
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "a.mp4"}, work_dir=tmp_path / "w",
                        depth_video=source, option_names={"max_frames": "'max_frames'"})
    long = make_video(tmp_path / "long.mp4", frames=FRAMES + 2, width=WIDTH, height=HEIGHT)
    job.depth_video = long
    with pytest.raises(StereoInputError, match="or 'max_frames' to convert only the start"):
        plan_conversion(job, ConversionSettings(inpaint=None))
    job.option_names = {}
    with pytest.raises(StereoInputError, match="or --max-frames to convert only the start"):
        plan_conversion(job, ConversionSettings(inpaint=None))
