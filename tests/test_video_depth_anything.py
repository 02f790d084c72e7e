"""Video Depth Anything: the streamed inference's invariants, loading, sizes and compute (no official code needed;
tools/compare_official.py compares against the official repository)."""

import pytest
import torch
import torch.nn.functional as F

from stereo_core import model_files
from stereo_core import video_depth_anything as vda
from stereo_core.errors import StereoInputError
from tiny_models import build_video_depth_anything_folder, tiny_video_depth_anything

HEIGHT, WIDTH, INPUT = 24, 40, 28  # the model works at 28 x 42 (2 x 3 patches)


@pytest.fixture(scope="module")
def network():
    return tiny_video_depth_anything(seed=3)


def frames(count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (1, HEIGHT, WIDTH, 3), generator=generator)
    drift = torch.randint(-40, 40, (count, HEIGHT, WIDTH, 3), generator=generator)
    return (base + drift.cumsum(0) // 4).clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def clip():
    return frames(80)  # four windows (0, 22, 44, 66)


@pytest.fixture(scope="module")
def reference(network, clip):
    return vda.infer_video_depth(network, clip, INPUT)


def test_depth_has_a_frame_for_every_frame_at_the_frame_size(reference, clip):
    assert reference.shape == (80, HEIGHT, WIDTH) and reference.dtype == torch.float32
    assert torch.isfinite(reference).all() and (reference >= 0).all()
    assert reference.std() > 0  # not a degenerate constant


def test_pushing_in_any_pieces_gives_the_same_depth(network, clip, reference):
    stream = vda.VideoDepthStream(network, HEIGHT, WIDTH, INPUT)
    pieces, start = [], 0
    for size in (7, 1, 30, 0, 25, 17):
        pieces.append(stream.push(clip[start:start + size]))
        start += size
    pieces.append(stream.push(clip[start:]))
    pieces.append(stream.finish())
    assert sum(piece.shape[0] for piece in pieces) == 80
    torch.testing.assert_close(torch.cat(pieces), reference, rtol=0, atol=0)
    # Depth is handed out as soon as it is final: all but the last window's frames before finish().
    assert sum(piece.shape[0] for piece in pieces[:-1]) == 66 + 24 - 22


def test_resuming_from_the_state_at_every_window_boundary_gives_identical_depth(network, clip, reference):
    stream = vda.VideoDepthStream(network, HEIGHT, WIDTH, INPUT)
    delivered, pushed, boundaries = [], 0, 0
    while pushed < clip.shape[0]:
        size = min(stream.frames_until_next_window, clip.shape[0] - pushed)
        delivered.append(stream.push(clip[pushed:pushed + size]))
        pushed += size
        state = stream.state()
        assert state["queue"] is None or pushed == clip.shape[0]  # a boundary: no queued inputs
        assert state["meta"]["frames_pushed"] == pushed
        assert state["meta"]["frames_emitted"] == sum(piece.shape[0] for piece in delivered)
        stream = vda.VideoDepthStream(network, HEIGHT, WIDTH, INPUT)
        stream.restore(state)
        boundaries += 1
    delivered.append(stream.finish())
    assert boundaries == 4
    torch.testing.assert_close(torch.cat(delivered), reference, rtol=0, atol=0)


def test_resuming_from_a_state_inside_a_window_gives_identical_depth(network, clip, reference):
    stream = vda.VideoDepthStream(network, HEIGHT, WIDTH, INPUT)
    first = stream.push(clip[:41])
    resumed = vda.VideoDepthStream(network, HEIGHT, WIDTH, INPUT)
    resumed.restore(stream.state())
    rest = torch.cat([resumed.push(clip[41:]), resumed.finish()])
    torch.testing.assert_close(torch.cat([first, rest]), reference, rtol=0, atol=0)


def test_the_carry_does_not_grow_with_the_clip(network, clip):
    stream = vda.VideoDepthStream(network, HEIGHT, WIDTH, INPUT)
    sizes = []
    for end in (32, 54, 76):
        stream.push(clip[end - (32 if end == 32 else 22):end])
        state = stream.state()
        sizes.append({key: tuple(value.shape) for key, value in state.items() if isinstance(value, torch.Tensor)})
    assert sizes[0] == sizes[1] == sizes[2]
    assert sizes[0]["keyframes"][0] == 10 and sizes[0]["tail"][0] == 8 and sizes[0]["references"][0] == 2


def test_a_clip_shorter_than_a_window_is_one_window_over_the_padded_clip(network):
    short = frames(5, seed=1)
    depth = vda.infer_video_depth(network, short, INPUT)
    assert depth.shape == (5, HEIGHT, WIDTH)
    # Independently: the clip padded with its last frame to 32, resized and normalised, through the network once.
    padded = torch.cat([short, short[-1:].expand(27, -1, -1, -1)]).float().div(255).permute(0, 3, 1, 2)
    size = vda.model_input_size(HEIGHT, WIDTH, INPUT)
    inputs = F.interpolate(padded, size=size, mode="bicubic", align_corners=False)
    mean, std = torch.tensor(vda.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(vda.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        raw = network(((inputs - mean) / std).unsqueeze(0))[0]
    expected = F.interpolate(raw[:5, None], size=(HEIGHT, WIDTH), mode="bilinear", align_corners=True)[:, 0]
    torch.testing.assert_close(depth, expected, rtol=1e-5, atol=1e-6)


def test_one_frame_and_float_frames(network):
    one = frames(1, seed=2)
    depth = vda.infer_video_depth(network, one, INPUT)
    assert depth.shape == (1, HEIGHT, WIDTH)
    torch.testing.assert_close(vda.infer_video_depth(network, one.float() / 255, INPUT), depth)


def test_a_state_of_another_size_is_refused(network, clip):
    stream = vda.VideoDepthStream(network, HEIGHT, WIDTH, INPUT)
    stream.push(clip[:32])
    other = vda.VideoDepthStream(network, HEIGHT, WIDTH, 56)
    with pytest.raises(StereoInputError, match="input_size"):
        other.restore(stream.state())


@pytest.mark.parametrize("height, width, size, expected", [
    (1080, 1920, 518, (518, 924)),  # 16:9: the short side to 518, both multiples of 14
    (272, 640, 518, (392, 924)),  # wider than 16:9: a smaller input size (the official aspect rule)
    (1920, 1080, 518, (924, 518)),
    (518, 518, 518, (518, 518)),
])
def test_model_input_size(height, width, size, expected):
    assert vda.model_input_size(height, width, size) == expected


def test_the_published_folder_loads_through_the_real_path(tmp_path):
    folder = build_video_depth_anything_folder(tmp_path / "Video-Depth-Anything-Small", seed=3)
    model = vda.load_video_depth_anything(folder, dtype="fp32")
    assert model.kind == model_files.VDA_SMALL and model.encoder == "vits"
    expected = tiny_video_depth_anything(seed=3).state_dict()
    loaded = model.network.state_dict()
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)
    base = build_video_depth_anything_folder(tmp_path / "Video-Depth-Anything-Base", encoder="vitb")
    assert vda.load_video_depth_anything(base, dtype="fp32").kind == model_files.VDA_BASE


def test_a_missing_or_foreign_checkpoint_gets_a_clear_message(tmp_path):
    with pytest.raises(StereoInputError, match="--only video-depth-anything"):
        vda.load_video_depth_anything(tmp_path / "Video-Depth-Anything-Small")
    folder = tmp_path / "broken" / "Video-Depth-Anything-Small"
    folder.mkdir(parents=True)
    state = tiny_video_depth_anything().state_dict()
    state["head.extra.weight"] = torch.zeros(1)
    torch.save(state, folder / "video_depth_anything_vits.pth")
    with pytest.raises(StereoInputError, match="not a Video Depth Anything checkpoint"):
        vda.load_video_depth_anything(folder)


def test_half_precision_runs_and_stays_close(network, clip):
    half = tiny_video_depth_anything(seed=3).to(torch.bfloat16)
    depth = vda.infer_video_depth(half, clip[:10], INPUT)
    full = vda.infer_video_depth(network, clip[:10], INPUT)
    assert depth.dtype == torch.float32 and depth.shape == full.shape
    # Random tiny weights amplify rounding; the half-precision depth still follows the fp32 one closely.
    assert torch.corrcoef(torch.stack([depth.flatten(), full.flatten()]))[0, 1] > 0.95


def test_compute_per_frame_is_counted_for_each_size():
    small, base, large = (vda.flops_per_frame(encoder, 1080, 1920) for encoder in ("vits", "vitb", "vitl"))
    assert 1e11 < small < base < large < 1e13
    assert vda.flops_per_frame("vits", 540, 960, 518) == small  # the model works at the same size
    assert vda.flops_per_frame("vits", 1080, 1920, 252) < small / 3
