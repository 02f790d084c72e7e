"""Still images: the command line on image files and mixed folders, MPO and JPS, and the library's pieces."""

import io
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, TiffImagePlugin

from stereo_core import cli, photos
from stereo_core.layouts import compose_stereo
from synthetic_video import describe, make_video

FAST = ["--max-res", "64", "--depth-steps", "2", "--steps", "2", "--quiet"]
WIDTH, HEIGHT = 48, 32
# 20 pixels of parallax, which shows at this size (the default, the reference's look, is under one pixel here).
PIXELS = ["--max-disp", "20", "--disp-unit", "pixels"]


def scene(width=WIDTH, height=HEIGHT, seed=0):
    """A smooth RGB picture (uint8 [H, W, 3]) that JPEG keeps well: red grows to the right, green downwards,
    blue in 8-pixel blocks (placed by `seed`), so a warp, a turn or a swap shows."""
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    picture[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)
    picture[:, :, 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    blocks = np.random.default_rng(seed).integers(0, 2, (height // 8 + 1, width // 8 + 1)) * 200
    picture[:, :, 2] = np.kron(blocks, np.ones((8, 8)))[:height, :width]
    return picture


def depth_picture(width=WIDTH, height=HEIGHT):
    """Grey depth (white = near): a ramp with a near box."""
    depth = np.tile(np.linspace(40, 160, width, dtype=np.uint8), (height, 1))
    depth[height // 4: height // 2, width // 3: width // 2] = 240
    return Image.fromarray(depth, "L")


def rotated_jpeg(path, upright):
    """A JPEG stored turned (its pixels are the upright picture rotated 90 degrees counter-clockwise) with EXIF
    orientation 6, which says: turn it 90 degrees clockwise to show it."""
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, "JPEG", quality=95, exif=exif)
    return path


def run(*argv):
    return cli.main([str(a) for a in argv])


def test_a_mixed_folder_converts_images_and_videos_and_names_the_rest(tmp_path, models_dir, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(scene()).save(folder / "a.png", icc_profile=srgb)
    rotated_jpeg(folder / "b.jpg", scene(seed=1))  # upright 48x32, stored 32x48
    Image.fromarray(scene(seed=2)).save(folder / "c.webp", lossless=True)
    make_video(folder / "d.mp4", frames=3, width=WIDTH, height=HEIGHT, fps=Fraction(24), audio_codec=None)
    (folder / "notes.txt").write_text("not a picture")
    assert run(folder, "-o", tmp_path / "out", "--models", models_dir, *FAST) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a_sbs.png", "b_sbs.jpg", "c_sbs.webp", "d_sbs.mp4"]
    for name, kind in (("a_sbs.png", "PNG"), ("b_sbs.jpg", "JPEG"), ("c_sbs.webp", "WEBP")):
        with Image.open(out / name) as image:
            assert (image.format, image.size) == (kind, (2 * WIDTH, HEIGHT)), name
    with Image.open(out / "a_sbs.png") as image:
        assert image.info.get("icc_profile") == srgb, "the colour profile is kept"
        left = np.asarray(image.convert("RGB"))[:, :WIDTH]
    assert np.array_equal(left, scene()), "PNG stays lossless: the left half is the input exactly"
    with Image.open(out / "b_sbs.jpg") as image:  # upright: the left half is the upright picture
        left = np.asarray(image.convert("RGB"), dtype=np.float32)[:, :WIDTH]
    assert np.abs(left - scene(seed=1)).mean() < 12
    assert describe(out / "d_sbs.mp4")["width"] == 2 * WIDTH
    assert "notes.txt" in caplog.text and "Skipped" in caplog.text


def test_depth_images_and_a_rerun_skip_finished_images(tmp_path, capsys):
    folder, depths = tmp_path / "photos", tmp_path / "depths"
    folder.mkdir()
    depths.mkdir()
    for name in ("a", "b"):
        Image.fromarray(scene()).save(folder / f"{name}.png")
        depth_picture().save(depths / f"{name}_depth.png")
    common = [folder, "--depth-video", depths, "--no-inpaint", "--models", tmp_path / "nowhere", "--quiet"]
    assert run(*common) == 0  # beside the inputs; no model is needed with depth images
    outputs = [folder / "a_sbs.png", folder / "b_sbs.png"]
    stamps = [path.stat().st_mtime_ns for path in outputs]
    outputs[1].unlink()
    assert run(*common) == 0
    assert outputs[0].stat().st_mtime_ns == stamps[0], "a finished image is left alone"
    assert outputs[1].is_file(), "a missing one is made again"
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_sbs.png", "b.png", "b_sbs.png"]
    with Image.open(outputs[0]) as image:
        right = np.asarray(image.convert("RGB"))[:, WIDTH:]
    assert not np.array_equal(right, scene()), "the right eye is warped"


def test_mpo_holds_two_views_left_then_right(tmp_path):
    source, depth = tmp_path / "p.jpg", tmp_path / "p_depth.png"
    Image.fromarray(scene()).save(source, quality=95)
    depth_picture().save(depth)
    assert run(source, "--depth-video", depth, "--no-inpaint", "--image-format", "mpo", *PIXELS, "--quiet") == 0
    with Image.open(tmp_path / "p.mpo") as image:
        assert image.format == "MPO" and image.n_frames == 2
        entries = image.mpinfo[0xB002]
        assert [entry["Attribute"]["MPType"] for entry in entries] == ["Multi-Frame Image: (Disparity)"] * 2
        views, numbers = [], []
        for frame in range(2):
            image.seek(frame)
            views.append(np.asarray(image.convert("RGB"), dtype=np.float32))
            numbers.append(_mp_attributes(image.info["mp"])[0xB101])
    assert numbers == [1, 2], "each view says which viewpoint it is, counted from the left"
    with Image.open(source) as original:
        left = np.asarray(original.convert("RGB"), dtype=np.float32)
    assert views[0].shape == (HEIGHT, WIDTH, 3)
    assert np.abs(views[0] - left).mean() < 6, "the first view is the left eye (the photo)"
    assert np.abs(views[1] - left).mean() > 10, "the second is the warped right eye"


def _mp_attributes(data: bytes) -> dict:
    """The MP attribute directory of a view's MPF segment (after the index in the first view)."""
    stream = io.BytesIO(data)
    head = stream.read(8)
    directory = TiffImagePlugin.ImageFileDirectory_v2(head)
    stream.seek(directory.next)
    directory.load(stream)
    if 0xB101 in directory:
        return dict(directory)
    attributes = TiffImagePlugin.ImageFileDirectory_v2(head)
    stream.seek(directory.next)
    attributes.load(stream)
    return dict(attributes)


def test_jps_puts_the_right_eye_on_the_left(tmp_path):
    source, depth = tmp_path / "p.png", tmp_path / "depth.png"
    Image.fromarray(scene()).save(source)
    depth_picture().save(depth)
    common = [source, "--depth-video", depth, "--no-inpaint", *PIXELS, "--quiet"]
    assert run(*common, "-o", tmp_path / "p.jps") == 0  # the extension chooses the format
    assert run(*common, "--image-format", "png") == 0
    with Image.open(tmp_path / "p.jps") as image:
        assert image.format == "JPEG" and image.size == (2 * WIDTH, HEIGHT)
        jps = np.asarray(image.convert("RGB"), dtype=np.float32)
    with Image.open(tmp_path / "p_sbs.png") as image:
        sbs = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert np.abs(jps[:, :WIDTH] - sbs[:, WIDTH:]).mean() < 6, "left half: the right eye"
    assert np.abs(jps[:, WIDTH:] - sbs[:, :WIDTH]).mean() < 6, "right half: the left eye"
    assert np.abs(sbs[:, WIDTH:] - sbs[:, :WIDTH]).mean() > 10


def test_recursive_mirrors_the_tree_and_one_bad_image_does_not_stop_the_rest(tmp_path, capsys):
    folder = tmp_path / "tree"
    (folder / "trip" / "day1").mkdir(parents=True)
    Image.fromarray(scene()).save(folder / "top.png")
    Image.fromarray(scene()).save(folder / "trip" / "day1" / "deep.png")
    (folder / "trip" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    depth = tmp_path / "depth.png"
    depth_picture().save(depth)
    out = tmp_path / "out"
    # A single depth image serves only one input: with several, a folder is needed.
    assert run(folder, "-o", out, "--depth-video", depth, "--no-inpaint", "--recursive", "--quiet") == 2
    depths = tmp_path / "depths"
    for sub in ("", "trip", "trip/day1"):
        (depths / sub).mkdir(parents=True, exist_ok=True)
    for name in ("top", "trip/day1/deep", "trip/broken"):
        depth_picture().save(depths / f"{name}_depth.png")
    assert run(folder, "-o", out, "--depth-video", depths, "--no-inpaint", "--recursive", "--quiet") == 1
    err = capsys.readouterr().err
    assert "1 of 3 images failed" in err and "broken.png" in err.splitlines()[-1]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["top_sbs.png", "trip/day1/deep_sbs.png"]


def test_a_lone_image_with_filename_tags_anaglyph_and_depth(tmp_path):
    source, depth = tmp_path / "p.webp", tmp_path / "d.png"
    Image.fromarray(scene()).save(source, lossless=True)
    depth_picture().save(depth)
    assert run(source, "--depth-video", depth, "--no-inpaint", "--format", "tb", "--filename-tags", "--anaglyph",
               "--save-depth", "--image-format", "png", "--quiet") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "p.webp", "p_TB.png", "p_anaglyph.png",
                                                         "p_depth.png"]
    with Image.open(tmp_path / "p_TB.png") as image:
        assert image.size == (WIDTH, 2 * HEIGHT)
    with Image.open(tmp_path / "p_depth.png") as image:
        grey = np.asarray(image.convert("L"))
    assert grey.max() == 255 and grey.min() == 0, "the depth picture is normalised (white = near)"


@pytest.mark.parametrize("argv, message", [
    (["--image-format", "mpo", "--format", "tb"], "leave out --format"),
    (["-o", "{tmp}/x.gif"], "name it with the extension of an image format"),
    (["-o", "{tmp}/x.jps", "--swap-eyes"], "JPS fixes the arrangement"),
    (["--depth-video", "{tmp}/clip.mp4"], "must be a depth image"),
])
def test_bad_image_options_are_one_clear_line(argv, message, tmp_path, capsys):
    source = tmp_path / "p.png"
    Image.fromarray(scene()).save(source)
    (tmp_path / "clip.mp4").write_bytes(b"")
    code = cli.main([str(source), "--no-inpaint", "--quiet", *(a.format(tmp=tmp_path) for a in argv)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_a_colour_depth_image_is_refused(tmp_path):
    depth = tmp_path / "inferno.png"
    Image.fromarray(scene()).save(depth)
    with pytest.raises(photos.StereoInputError, match="in colour"):
        photos.load_depth_image(depth)


def test_sixteen_bit_depth_keeps_its_precision(tmp_path):
    values = (np.linspace(0, 65535, WIDTH * HEIGHT).reshape(HEIGHT, WIDTH)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "d16.png")
    depth = photos.load_depth_image(tmp_path / "d16.png")
    assert depth.shape == (1, HEIGHT, WIDTH)
    assert torch.allclose(depth[0], torch.from_numpy(values.astype(np.float32) / 65535), atol=1e-6)


def test_stereo_pictures_match_the_video_layouts():
    left, right = torch.rand(1, 8, 10, 3), torch.rand(1, 8, 10, 3)
    for layout in ("sbs", "half-sbs", "tb"):
        assert torch.equal(photos.stereo_picture(left, right, layout), compose_stereo(left, right, layout))
    assert torch.equal(photos.stereo_picture(left, right, "jps"), torch.cat([right, left], dim=2))


def test_save_stereo_image_node_numbers_its_files_as_save_image(nodes, tmp_path, monkeypatch):
    monkeypatch.setenv("STEREOCRAFTER_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("STEREOCRAFTER_TEMP", str(tmp_path / "temp"))
    node = nodes["SC3D_SaveStereoImage"]()
    left = torch.from_numpy(np.stack([scene(seed=0), scene(seed=1)])).float() / 255
    right = left.flip(2)
    shown = node.save(left, right, "sbs", "stereo3d/pair")["ui"]["images"]
    assert shown == [{"filename": f"pair_0000{n}_.png", "subfolder": "stereo3d", "type": "output"} for n in (1, 2)]
    folder = tmp_path / "output" / "stereo3d"
    with Image.open(folder / "pair_00002_.png") as image:
        assert image.size == (2 * WIDTH, HEIGHT)
        assert np.array_equal(np.asarray(image)[:, :WIDTH], scene(seed=1)), "frame 2, losslessly"
    node.save(left[:1], right[:1], "tb", "stereo3d/pair")
    with Image.open(folder / "pair_00003_.png") as image:
        assert image.size == (WIDTH, 2 * HEIGHT)
    node.save(left[:1], right[:1], "anaglyph", "stereo3d/pair")
    with Image.open(folder / "pair_00004_.png") as image:
        assert image.size == (WIDTH, HEIGHT)

    (preview,) = node.save(left[:1], right[:1], "mpo", "stereo3d/pair")["ui"]["images"]
    with Image.open(folder / "pair_00005_.mpo") as image:
        assert image.format == "MPO" and image.n_frames == 2
        image.seek(1)
        assert np.abs(np.asarray(image.convert("RGB"), dtype=np.float32) - scene()[:, ::-1]).mean() < 6
    assert preview["type"] == "temp" and (tmp_path / "temp" / preview["filename"]).is_file()
    node.save(left[:1], right[:1], "jps", "stereo3d/pair")
    with Image.open(folder / "pair_00006_.jps") as image:
        assert image.format == "JPEG" and image.size == (2 * WIDTH, HEIGHT)
        jps = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert np.abs(jps[:, :WIDTH] - scene()[:, ::-1]).mean() < 6, "the right eye first"
    with pytest.raises(ValueError, match="must name a file inside"):
        node.save(left, right, "sbs", "../outside")
    with pytest.raises(ValueError, match="frames"):
        node.save(left, right[:1], "sbs", "stereo3d/pair")


@pytest.mark.parametrize("suffix, kind", [(".tif", "TIFF"), (".bmp", "BMP"), (".jpeg", "JPEG")])
def test_other_formats_stay_in_their_format(suffix, kind, tmp_path):
    source, depth = tmp_path / f"p{suffix}", tmp_path / "d.png"
    Image.fromarray(scene()).save(source)
    depth_picture().save(depth)
    assert run(source, "--depth-video", depth, "--no-inpaint", "--format", "half-sbs", "--quiet") == 0
    with Image.open(tmp_path / f"p_half-sbs{suffix}") as image:
        assert (image.format, image.size) == (kind, (WIDTH, HEIGHT))


def test_photos_take_depth_anything_v2_where_its_folder_is_there(tmp_path, models_dir, monkeypatch):
    from stereo_core.depth_anything_v2 import estimate_depth, load_depth_anything_v2

    source = tmp_path / "p.png"
    Image.fromarray(scene()).save(source)
    assert run(source, "--save-depth", "--no-inpaint", "--models", models_dir, *FAST) == 0
    with Image.open(tmp_path / "p_sbs_depth.png") as image:
        saved = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255)
    model = load_depth_anything_v2(models_dir / "Depth-Anything-V2-Small-hf")
    expected = estimate_depth(model, torch.from_numpy(scene()).unsqueeze(0), 518)[0]
    assert (saved - expected).abs().max() <= 1.01 / 255, "the depth is Depth Anything V2's"

    chosen = []
    for name in ("depthcrafter_estimator", "depth_anything_v2_estimator"):
        real = getattr(photos, name)
        monkeypatch.setattr(photos, name, lambda *args, real=real, name=name: chosen.append(name) or real(*args))
    out = tmp_path / "chosen.png"
    assert run(source, "-o", out, "--depth-model", "depthcrafter", "--no-inpaint", "--models", models_dir, *FAST) == 0
    assert chosen == ["depthcrafter_estimator"], "a --depth-model given wins"
    out.unlink()
    monkeypatch.setattr(cli.model_files, "FOLDER_NAMES",
                        {**cli.model_files.FOLDER_NAMES, "depth-anything-v2-small": "not-downloaded"})
    assert run(source, "-o", out, "--no-inpaint", "--models", models_dir, *FAST) == 0
    assert chosen == ["depthcrafter_estimator"] * 2, "without its folder, the video default"
