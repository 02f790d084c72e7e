"""Depth Anything V2: loading the -hf layout, the processor's preprocessing, the temporal normalisation."""

import io
import json

import pytest
import torch

from stereo_core import depth_anything_v2 as dav2
from stereo_core import model_files
from stereo_core.depth_anything_v2 import EmaSettings, TemporalMinMax


@pytest.fixture(scope="module")
def dav2_model(model_tree):
    return dav2.load_depth_anything_v2(model_tree["dav2"], dtype="fp32")


def frames_of(count, height, width, seed=0):
    return torch.randint(0, 256, (count, height, width, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def test_the_real_folder_layout_loads_through_the_loader(dav2_model, model_tree):
    assert dav2_model.kind == model_files.DAV2_SMALL and dav2_model.dtype == torch.float32
    assert type(dav2_model.network).__name__ == "DepthAnythingForDepthEstimation"
    assert dav2_model.preprocessing.size == 518 and dav2_model.preprocessing.multiple == 14
    assert dav2_model.preprocessing.mode == "bicubic"
    assert model_files.folder_problem(model_tree["dav2"], model_files.DAV2_SMALL) is None


def test_an_incomplete_folder_says_what_is_missing_and_how_to_fetch_it(model_tree, tmp_path):
    folder = tmp_path / "Depth-Anything-V2-Small-hf"
    folder.mkdir()
    (folder / "config.json").write_text((model_tree["dav2"] / "config.json").read_text())
    with pytest.raises(ValueError) as error:
        dav2.load_depth_anything_v2(folder)
    message = str(error.value)
    assert "preprocessor_config.json" in message and "model.safetensors" in message
    assert "--only depth-anything-v2-small" in message
    assert "hf download depth-anything/Depth-Anything-V2-Small-hf config.json preprocessor_config.json " \
           "model.safetensors" in message


@pytest.mark.parametrize("height, width, size, expected", [
    (1080, 1920, 518, (518, 924)),  # downscale: the height needs the smaller change
    (50, 70, 518, (364, 518)),  # upscale: the width needs the smaller change
    (28, 42, 28, (28, 42)),
])
def test_model_input_size_is_the_processors_rule(height, width, size, expected):
    assert dav2.model_input_size(height, width, size) == expected


def test_ours_equals_the_image_processor_and_model(dav2_model, model_tree):
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(model_tree["dav2"])
    reference = AutoModelForDepthEstimation.from_pretrained(model_tree["dav2"]).eval()
    exact = getattr(processor, "backend", "") == "torchvision"  # the backend ComfyUI's environment gives
    # (height, width, input_size): identity resize, downscale, upscale at the default 518 (different aspect).
    for height, width, size in [(28, 42, 28), (90, 60, 56), (36, 48, 518)]:
        frames = frames_of(3, height, width, seed=height)
        ours = dav2.infer(dav2_model.network, frames, dav2_model.preprocessing, size, torch.device("cpu"),
                          torch.float32)
        inputs = processor(images=[frame.numpy() for frame in frames], return_tensors="pt",
                           size={"height": size, "width": size})
        with torch.no_grad():
            output = reference(**inputs)
        theirs = torch.stack([r["predicted_depth"] for r in processor.post_process_depth_estimation(
            output, target_sizes=[(height, width)] * 3)])
        assert ours.shape == theirs.shape == (3, height, width) and ours.dtype == torch.float32
        scale = float(theirs.abs().max())
        if exact or (height, width) == dav2.model_input_size(height, width, size):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5 * scale)
        else:  # PIL's bicubic rounds to 8 bits between its two passes; the torch resize rounds once
            assert float((ours - theirs).abs().max()) < 0.03 * scale


def test_estimate_depth_of_a_still_image_is_its_min_max(dav2_model):
    image = frames_of(1, 40, 60).float() / 255
    raw = dav2.DepthAnythingV2Stream(dav2_model, 40, 60, 56).depth(image)
    for mode in dav2.NORMALIZE_CHOICES:
        depth = dav2.estimate_depth(dav2_model, image, input_size=56, normalize=mode)
        expected = (raw - raw.min()) / (raw.max() - raw.min())
        torch.testing.assert_close(depth, expected)
        assert float(depth.min()) == 0.0 and float(depth.max()) == 1.0


def test_float_and_uint8_frames_give_the_same_depth(dav2_model):
    frames = frames_of(2, 30, 44)
    as_float = dav2.estimate_depth(dav2_model, frames.float() / 255, input_size=42, normalize="clip")
    assert torch.equal(as_float, dav2.estimate_depth(dav2_model, frames, input_size=42, normalize="clip"))


# --- the temporal normalisation ---------------------------------------------------------------------------


def run_normalizer(depth, settings, cuts=(), chunk=None, resume=False):
    """All frames through a TemporalMinMax, in chunks; with `resume`, a new one restored at every boundary
    from a state that went through torch.save and JSON (as a store keeps it)."""
    normalizer = TemporalMinMax(settings, cuts)
    chunk = chunk or depth.shape[0]
    out = []
    for first in range(0, depth.shape[0], chunk):
        out.append(normalizer.push(depth[first:first + chunk]))
        if resume:
            state = normalizer.state()
            buffer = io.BytesIO()
            torch.save(state["tensors"], buffer)
            buffer.seek(0)
            normalizer = TemporalMinMax(settings, cuts)
            normalizer.restore({"tensors": torch.load(buffer), "meta": json.loads(json.dumps(state["meta"]))})
    out.append(normalizer.finish())
    return torch.cat(out)


def ranged_clip(lows, highs, size=(4, 5), seed=0):
    """Depth frames whose min and max are exactly the given ones."""
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for low, high in zip(lows, highs):
        frame = low + (high - low) * torch.rand(size, generator=generator)
        frame.view(-1)[0], frame.view(-1)[1] = low, high
        frames.append(frame)
    return torch.stack(frames)


def applied_range(raw, normalized):
    """The (low, high) each frame was normalised with, from two of its pixels (none clipped)."""
    flat_raw, flat_out = raw.flatten(1), normalized.flatten(1)
    scale = (flat_raw[:, 1] - flat_raw[:, 0]) / (flat_out[:, 1] - flat_out[:, 0])
    low = flat_raw[:, 0] - flat_out[:, 0] * scale
    return low, low + scale


def test_output_is_in_0_1_and_keeps_every_frame_in_order():
    depth = torch.randn(23, 6, 7, generator=torch.Generator().manual_seed(2)) * 5 + 3
    out = run_normalizer(depth, EmaSettings(buffer=5, decay=0.8), chunk=4)
    assert out.shape == depth.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # Within each frame, nearer stays nearer (the normalisation only scales and shifts, then clips).
    in_raw_order = out.flatten(1).gather(1, depth.flatten(1).argsort(dim=1))
    assert bool((torch.diff(in_raw_order, dim=1) >= 0).all())


def test_a_constant_range_clip_equals_min_max_over_the_clip():
    depth = ranged_clip([2.0] * 12, [7.0] * 12)
    out = run_normalizer(depth, EmaSettings(buffer=4, decay=0.75), chunk=5)
    torch.testing.assert_close(out, (depth - 2.0) / 5.0)


def test_a_step_in_range_is_followed_smoothly_and_never_seen_beyond_the_look_ahead():
    step, buffer, decay = 10, 4, 0.6
    lows = [0.0] * step + [1.0] * 14
    highs = [1.0] * step + [5.0] * 14
    depth = ranged_clip(lows, highs)
    out = run_normalizer(depth, EmaSettings(buffer=buffer, decay=decay), chunk=3)
    low, high = applied_range(depth, out)
    # Frames whose look-ahead (itself and the next buffer-1) ends before the step are untouched by it.
    untouched = step - buffer + 1
    torch.testing.assert_close(high[:untouched], torch.ones(untouched))
    torch.testing.assert_close(low[:untouched], torch.zeros(untouched))
    # From there on the range moves towards the new one monotonically, by at most (1 - decay) of the rest.
    moves = torch.diff(high[untouched - 1:])
    assert bool((moves >= -1e-5).all()) and float(moves.max()) <= (1 - decay) * 4.0 + 1e-4
    assert 1.0 < float(high[untouched]) < 5.0 and abs(float(high[-1]) - 5.0) < 0.01  # no jump; it gets there


def test_frames_after_a_cut_use_nothing_from_before_it():
    depth = torch.cat([ranged_clip([0.0] * 9, [10.0] * 9, seed=1), ranged_clip([3.0] * 7, [4.0] * 7, seed=2)])
    settings = EmaSettings(buffer=5, decay=0.9)
    out = run_normalizer(depth, settings, cuts=[9], chunk=4)
    torch.testing.assert_close(out[:9], run_normalizer(depth[:9], settings))
    torch.testing.assert_close(out[9:], run_normalizer(depth[9:], settings))
    torch.testing.assert_close(out[9:], (depth[9:] - 3.0) / 1.0)
    # Without the cut the second scene is squashed by the first's range.
    assert float(run_normalizer(depth, settings)[9:].max()) < 0.9


def test_frames_come_out_as_soon_as_their_look_ahead_or_scene_is_complete():
    normalizer = TemporalMinMax(EmaSettings(buffer=4, decay=0.5), scene_cuts=[6])
    depth = torch.rand(10, 3, 3)
    assert normalizer.push(depth[:3]).shape[0] == 0
    assert normalizer.push(depth[3:4]).shape[0] == 1  # frame 0's window 0..3 is complete
    assert normalizer.push(depth[4:6]).shape[0] == 5  # frames 1, 2 and the end of the scene 3..5
    assert normalizer.held == 0
    assert normalizer.push(depth[6:10]).shape[0] == 1 and normalizer.held == 3
    assert normalizer.finish().shape[0] == 3


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_state_and_restore_at_every_chunk_boundary_give_the_identical_result(chunk):
    depth = torch.randn(19, 5, 6, generator=torch.Generator().manual_seed(chunk)) * 3
    settings = EmaSettings(buffer=4, decay=0.7)
    straight = run_normalizer(depth, settings, cuts=[8, 9, 15])
    assert torch.equal(run_normalizer(depth, settings, cuts=[8, 9, 15], chunk=chunk, resume=True), straight)


def test_a_state_without_frames_resumes_identically_from_the_raw_depth_given_back():
    depth = torch.randn(14, 4, 5, generator=torch.Generator().manual_seed(9))
    settings = EmaSettings(buffer=5, decay=0.6)
    straight = run_normalizer(depth, settings, cuts=[7])
    first = TemporalMinMax(settings, [7])
    out = [first.push(depth[:10])]
    state = first.state(with_frames=False)
    assert state["tensors"]["queue"].numel() == 0 and first.held == 3  # frames 7..9 of the second scene
    second = TemporalMinMax(settings, [7])
    with pytest.raises(ValueError, match="raw depth of the last 3 frames"):
        second.restore(state)
    second.restore(state, held=depth[:10])
    out += [second.push(depth[10:]), second.finish()]
    assert torch.equal(torch.cat(out), straight)


def test_the_stream_resumes_identically_and_holds_no_more_than_the_buffer(dav2_model):
    frames = frames_of(9, 30, 44, seed=5)
    options = dict(input_size=42, ema=EmaSettings(buffer=3, decay=0.5), scene_cuts=[5], batch_size=2)
    stream = dav2.DepthAnythingV2Stream(dav2_model, 30, 44, **options)
    straight = torch.cat([stream.push(frames), stream.finish()])
    assert straight.shape == (9, 30, 44)

    out, stream = [], dav2.DepthAnythingV2Stream(dav2_model, 30, 44, **options)
    for first in range(0, 9, 2):
        out.append(stream.push(frames[first:first + 2]))
        assert stream.normalizer.held < 3
        state = stream.state()
        stream = dav2.DepthAnythingV2Stream(dav2_model, 30, 44, **options)
        stream.restore(state)
    out.append(stream.finish())
    assert torch.equal(torch.cat(out), straight)
    with pytest.raises(ValueError, match="another model, size or input_size"):
        dav2.DepthAnythingV2Stream(dav2_model, 30, 44, **{**options, "input_size": 56}).restore(state)


def test_bad_settings_get_one_clear_message(dav2_model):
    with pytest.raises(ValueError, match="buffer"):
        TemporalMinMax(EmaSettings(buffer=0))
    with pytest.raises(ValueError, match="decay"):
        TemporalMinMax(EmaSettings(decay=1.0))
    with pytest.raises(ValueError, match="normalize"):
        dav2.estimate_depth(dav2_model, frames_of(1, 20, 20), normalize="scene")
    with pytest.raises(ValueError, match="input_size"):
        dav2.estimate_depth(dav2_model, frames_of(1, 20, 20), input_size=10)


def test_flops_are_counted_at_real_size_on_the_meta_device():
    small = dav2.flops_per_frame("small", 1080, 1920)
    assert dav2.flops_per_frame("small", 540, 960) == small  # the same model input, 518 x 924
    base, large = dav2.flops_per_frame("base", 1080, 1920), dav2.flops_per_frame("large", 1080, 1920)
    assert small < base < large
    # The ViT alone, by hand: 37 x 66 patches + the class token through 12 layers of width 384, each layer's
    # linear maps 12 d^2 multiply-adds per token and its attention 2 T^2 d; the DPT head adds less than that.
    tokens, width, layers = 37 * 66 + 1, 384, 12
    vit = layers * (2 * tokens * 12 * width ** 2 + 4 * tokens ** 2 * width)
    assert vit < small < 1.3 * vit
    assert dav2.flops_per_frame("small", 1080, 1920, input_size=364) < small
