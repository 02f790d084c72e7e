"""Video Depth Anything and Depth Anything V2 as the engine's depth models: the command line, resuming,
scenes, Ray and Stereo Convert Video, on tiny random models in the real folder layouts."""

import shutil
from fractions import Fraction
from functools import partial

import pytest
import torch
from test_cli import FAST
from test_depth_sources import killed_writing
from test_scenes import in_order, make_scene_video, pictures  # noqa: F401 (pictures is a fixture)

from stereo_core import cli, model_files
from stereo_core import depth_anything_v2 as dav2
from stereo_core import video_depth_anything as vda
from stereo_core.engine import ConversionJob, ConversionSettings, LoadedModels, OutputSettings, Reporter, convert
from stereo_core.engine import depth as engine_depth
from stereo_core.engine.depth_models import pack_state, unpack_state
from stereo_core.engine.scenes import SceneSettings, convert_scenes
from stereo_core.errors import StereoInputError
from stereo_core.video_io import read_video, to_bytes
from synthetic_video import make_video

FRAMES, WIDTH, HEIGHT = 10, 96, 64
INPUT_SIZE = 42  # the tiny models' working size (a multiple of 14)
EMA = dav2.EmaSettings(buffer=3, decay=0.5)  # a look-ahead shorter than the clip: frames come out as they go


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("depth_models") / "clip.mp4", frames=FRAMES, width=WIDTH,
                      height=HEIGHT, fps=Fraction(24))


@pytest.fixture(scope="module")
def three_scenes(tmp_path_factory):
    return make_scene_video(tmp_path_factory.mktemp("depth_model_scenes") / "three.mp4", [8, 8, 8])


@pytest.fixture(scope="module")
def long_source(tmp_path_factory):
    """Long enough for two Video Depth Anything windows (32 frames, then 22 more)."""
    return make_video(tmp_path_factory.mktemp("depth_models_long") / "long.mp4", frames=40, width=WIDTH,
                      height=HEIGHT, fps=Fraction(24))


@pytest.fixture(scope="module")
def dav2_model(model_tree):
    return dav2.load_depth_anything_v2(model_tree["dav2"], dtype="fp32")


@pytest.fixture(scope="module")
def vda_model(model_tree):
    return vda.load_video_depth_anything(model_tree["video_depth_anything"], dtype="fp32")


def minmax(depth):
    return (depth - depth.min()) / (depth.max() - depth.min())


def expected_dav2(model, frames, ema=EMA):
    """What the engine's Depth Anything V2 depth is: the library's EMA-normalised depth, min-max over the run."""
    return minmax(dav2.estimate_depth(model, frames, input_size=INPUT_SIZE, normalize="ema", ema=ema))


def expected_vda(model, frames, ema=None):
    """What the engine's Video Depth Anything depth is: the library's, min-max over the run."""
    return vda.estimate_depth(model, frames, input_size=INPUT_SIZE)


# The engine's name of each model, its family (the kind the engine asks the face for), its fixture, its
# expected depth, and its loader node with the folder the tiny tree has.
MODELS = {
    "depth-anything-v2": (model_files.DAV2_FAMILY, "dav2_model", expected_dav2,
                          "SC3D_DepthAnythingV2ModelLoader", "Depth-Anything-V2-Small-hf"),
    "video-depth-anything": (model_files.VDA_FAMILY, "vda_model", expected_vda,
                             "SC3D_VideoDepthAnythingModelLoader", "Video-Depth-Anything-Small"),
}
each_model = pytest.mark.parametrize("name", list(MODELS))


def loaded(request, name):
    family, fixture, expected, _, _ = MODELS[name]
    model = request.getfixturevalue(fixture)
    return LoadedModels({family: model}), partial(expected, model)


def assert_depth_pictures(pictures, expected):
    got = pictures[..., 0].int()
    assert got.shape == expected.shape[:1] + got.shape[1:]
    assert (got - to_bytes(expected).int()).abs().max() <= 1  # float rounding at a level's edge


# --- the command line ---------------------------------------------------------------------------------------


@each_model
def test_the_command_line_converts_with_the_depth_model(name, source, tmp_path, models_dir, request, pictures):
    output = tmp_path / "clip_sbs.mp4"
    assert cli.main([str(source), "-o", str(output), "--models", str(models_dir), "--depth-model", name,
                     "--depth-input-size", str(INPUT_SIZE), "--depth-ema-buffer", "3", "--depth-ema-decay", "0.5",
                     "--save-depth", *FAST]) == 0
    assert read_video(output).frames.shape[0] == FRAMES
    _, expected = loaded(request, name)
    assert_depth_pictures(in_order(pictures, "depth"), expected(read_video(source).frames))


@pytest.mark.parametrize("name, title, only", [
    ("depth-anything-v2", "Depth Anything V2 Large", "depth-anything-v2-large"),
    ("video-depth-anything", "Video Depth Anything Large", "video-depth-anything-large"),
])
def test_a_missing_depth_model_folder_names_its_download(name, title, only, source, tmp_path, models_dir, capsys):
    assert cli.main([str(source), "-o", str(tmp_path / "a.mp4"), "--models", str(models_dir), "--depth-model",
                     name, "--depth-model-size", "large", *FAST]) == 2
    error = capsys.readouterr().err
    assert f"{title} folder" in error
    assert f'python -m stereo_core download --models "{models_dir}" --only {only}' in error
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize("argv, message", [
    (["--depth-input-size", "10"], "depth input size must be at least 14"),
    (["--depth-ema-buffer", "0"], "ema buffer must be at least 1 frame"),
])
def test_impossible_depth_model_settings_are_one_line(argv, message, source, tmp_path, capsys):
    assert cli.main([str(source), "-o", str(tmp_path / "a.mp4"), "--depth-model", "depth-anything-v2", *argv]) == 2
    assert message in capsys.readouterr().err


# --- resuming --------------------------------------------------------------------------------------------------


def test_library_stream_states_survive_the_store(tmp_path):
    from stereo_core.engine.store import StageStore

    state = {"meta": {"lows": [0.1, 1 / 3], "ema": None, "shape": [2, 3]}, "queue": torch.rand(2, 3, 4),
             "tail": None, "tensors": {"queue": torch.empty(0)}}
    store = StageStore(tmp_path)
    store.save_tensors("state.safetensors", pack_state(state))
    back = unpack_state(store.require_tensors("state.safetensors")[0])
    assert back["meta"] == state["meta"] and back["tail"] is None
    assert torch.equal(back["queue"], state["queue"]) and back["tensors"]["queue"].shape == (0,)
    with pytest.raises(StereoInputError, match="start the depth again"):
        unpack_state({"queue": torch.rand(2)})


class Notices(Reporter):
    def __init__(self):
        self.notices = []

    def notice(self, message):
        self.notices.append(message)


@pytest.mark.parametrize("name, ema", [("depth-anything-v2", EMA), ("depth-anything-v2", dav2.EmaSettings(buffer=50)),
                                       ("video-depth-anything", EMA)],
                         ids=["dav2-short-look-ahead", "dav2-look-ahead-past-the-clip", "vda"])
def test_a_run_killed_in_its_depth_resumes_to_the_identical_video(name, ema, long_source, tmp_path, request,
                                                                  pictures, monkeypatch):
    # Pieces of 16, 16 and 8 frames, a state after each: Video Depth Anything's first window runs in the
    # second piece, so the state after it carries keyframes, reference depth and the frames awaiting the fade.
    monkeypatch.setattr(engine_depth, "PIECE_FRAMES", 16)
    models, expected = loaded(request, name)
    settings = ConversionSettings(depth_model=name, depth_input_size=INPUT_SIZE, depth_ema=ema, inpaint=None,
                                  output=OutputSettings(segment_frames=16))
    job = ConversionJob(source=long_source, outputs={"stereo": tmp_path / "a.mp4", "depth": tmp_path / "d.mp4"},
                        work_dir=tmp_path / "work", keep_work=True)
    convert(job, settings, models)
    uninterrupted = {kind: in_order(pictures, kind) for kind in ("stereo", "depth")}
    assert_depth_pictures(uninterrupted["depth"], expected(read_video(long_source).frames, ema=ema))
    (depth_folder,) = (tmp_path / "work").glob("depth-*")
    for killed_in in ("raw-0000032.safetensors", "raw-0000016.safetensors"):
        # Killed inside a piece: the store keeps the pieces before it and the state after the last of them.
        shutil.rmtree(depth_folder)
        shutil.rmtree(next((tmp_path / "work").glob("encode-*")))
        for path in job.outputs.values():
            path.unlink()
        with killed_writing(killed_in), pytest.raises(KeyboardInterrupt):
            convert(job, settings, models)
        assert sorted(path.name for path in depth_folder.glob("state-*")) == [
            f"state-{int(killed_in[4:11]) - 16:07d}.safetensors", f"state-{killed_in[4:]}"], "one state kept"
        reporter = Notices()
        convert(job, settings, models, reporter=reporter)
        assert f"depth: estimation resumes at frame {int(killed_in[4:11])}" in reporter.notices
        assert all(torch.equal(in_order(pictures, kind), frames) for kind, frames in uninterrupted.items())


# --- scenes and Ray -------------------------------------------------------------------------------------------


def scene_job(source, folder, name):
    return ConversionJob(source=source, outputs={"stereo": folder / f"{name}.mp4", "depth": folder / f"{name}_d.mp4"},
                         work_dir=folder / f"{name}.work")


@each_model
def test_split_scenes_normalise_each_scene_on_its_own(name, three_scenes, tmp_path, request, pictures):
    settings = ConversionSettings(depth_model=name, depth_input_size=INPUT_SIZE, depth_ema=EMA, inpaint=None)
    models, expected = loaded(request, name)
    convert_scenes(scene_job(three_scenes, tmp_path, "scenes"), settings, SceneSettings(min_scene_frames=4), models)
    frames = read_video(three_scenes).frames
    assert_depth_pictures(in_order(pictures, "depth"),
                          torch.cat([expected(frames[first:first + 8]) for first in (0, 8, 16)]))


@each_model
def test_ray_gives_the_one_process_video(name, three_scenes, tmp_path, models_dir, pictures):
    pytest.importorskip("ray")
    from stereo_core.engine.distributed import RayRunner, RaySession, WorkerSpec

    args = cli.build_parser().parse_args([str(three_scenes), "--models", str(models_dir), "--device", "cpu",
                                          "--depth-model", name, "--depth-input-size", str(INPUT_SIZE),
                                          "--no-inpaint"])
    settings, scenes = cli.settings_of(args), SceneSettings(min_scene_frames=4)
    convert_scenes(scene_job(three_scenes, tmp_path, "local"), settings, scenes,
                   cli.CommandLineModels(args, torch.device("cpu")))
    local = in_order(pictures, "stereo")
    runner = RayRunner(RaySession(), WorkerSpec(models=partial(cli.CommandLineModels, args),
                                                device=partial(cli.pick_device, "cpu"), threads=1), workers=1)
    try:
        convert_scenes(scene_job(three_scenes, tmp_path, "ray"), settings, scenes,
                       cli.CommandLineModels(args, torch.device("cpu")), runner=runner)
    finally:
        runner.close()
    ours = read_video(tmp_path / "ray.mp4").frames
    assert torch.equal(ours, read_video(tmp_path / "local.mp4").frames) and ours.shape[0] == local.shape[0] == 24


# --- Stereo Convert Video -------------------------------------------------------------------------------------


def test_stereo_convert_video_takes_any_depth_loader_on_one_input(nodes, pack):
    spec = nodes["SC3D_StereoConvertVideo"].INPUT_TYPES()["optional"]["depth_model"]
    loaders = ["SC3D_DepthCrafterModelLoader", "SC3D_VideoDepthAnythingModelLoader", "SC3D_DepthAnythingV2ModelLoader"]
    assert spec[0].split(",") == [nodes[name].RETURN_TYPES[0] for name in loaders]
    assert all(name in spec[1]["tooltip"] for name in ("DepthCrafter", "Video Depth Anything", "Depth Anything V2"))


@each_model
def test_stereo_convert_video_converts_with_the_depth_loader(name, nodes, source, tmp_path, models_dir, request,
                                                             monkeypatch):
    from test_convert_node import NODE, PathVideo, defaults, run

    from stereo_core.disparity import DisparitySettings

    monkeypatch.setenv("STEREOCRAFTER_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("STEREOCRAFTER_TEMP", str(tmp_path / "temp"))
    *_, loader, folder = MODELS[name]
    shown = defaults(nodes[NODE])  # the node's disparity knobs as a fresh node shows them
    disparity = DisparitySettings(max_disp=shown["max_disp"], unit=shown["disp_unit"], convergence=shown["convergence"],
                                  invert=shown["invert_depth"], normalize=shown["normalize"])
    (model,) = nodes[loader]().load(folder, "fp32")
    _, path, _, _ = run(nodes, PathVideo(source), depth_model=model, depth_input_size=INPUT_SIZE,
                        depth_ema_buffer=3, depth_ema_decay=0.5)["result"]
    # The same conversion through the engine with the library's model: the node ran that depth model.
    settings = ConversionSettings(depth_model=name, depth_input_size=INPUT_SIZE, depth_ema=EMA, inpaint=None,
                                  disparity=disparity)
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "engine.mp4"}, work_dir=tmp_path / "work")
    convert(job, settings, loaded(request, name)[0])
    assert torch.equal(read_video(path).frames, read_video(tmp_path / "engine.mp4").frames)


def test_stereo_convert_video_refuses_a_model_that_gives_no_depth(nodes, source, tmp_path, stereocrafter_model,
                                                                   monkeypatch):
    from test_convert_node import PathVideo, run

    monkeypatch.setenv("STEREOCRAFTER_OUTPUT", str(tmp_path / "output"))
    with pytest.raises(ValueError, match="'depth_model' takes a depth model loader .* StereoCrafter model"):
        run(nodes, PathVideo(source), depth_model=stereocrafter_model)
    # A workflow saved when the input was 'depthcrafter_model' still hands its model over under that name.
    with pytest.raises(ValueError, match="'depth_model' takes a depth model loader .* StereoCrafter model"):
        run(nodes, PathVideo(source), depthcrafter_model=stereocrafter_model)
