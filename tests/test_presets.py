"""Presets: the README's table is the table the faces apply, and explicit options win."""

import re
from pathlib import Path

import pytest

from stereo_core import cli
from stereo_core.errors import StereoInputError
from stereo_core.presets import PRESETS, preset_values

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_presets():
    text = README.read_text()
    table = re.search(r"<!-- presets:.*?-->\n(.*?)<!-- /presets -->", text, re.S).group(1)
    rows = [[cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            for line in table.strip().splitlines()]
    names = rows[0][1:]
    return {name: {row[0]: row[1 + k] for row in rows[2:]} for k, name in enumerate(names)}


def test_the_readme_lists_what_each_preset_sets():
    assert readme_presets() == {name: {key: str(value) for key, value in values.items()}
                                for name, values in PRESETS.items()}


def test_fast_is_guidance_one_fewer_steps_and_the_working_size():
    fast, reference = PRESETS["fast"], PRESETS["reference"]
    assert fast["inpaint_guidance"] == 1.0 and fast["inpaint_steps"] < reference["inpaint_steps"]
    assert fast["inpaint_max_res"] == reference["inpaint_max_res"] == 1024
    assert fast["depth_model"] == "video-depth-anything"


def parsed(argv):
    """The settings the command line would run with (its preset applied as `main` applies it)."""
    parser = cli.build_parser()
    args = parser.parse_args(argv)
    if args.preset is not None:
        args = cli.with_preset(parser, argv, args)
    return cli.settings_of(args)


def test_the_command_line_applies_a_preset_and_explicit_options_win(tmp_path):
    depth = ["--depth-video", str(tmp_path / "depth.mp4")]
    fast = parsed(["in.mp4", "--preset", "fast", *depth]).inpaint
    assert (fast.steps, fast.min_guidance, fast.max_guidance, fast.inpaint_max_res) == (4, 1.0, 1.0, 1024)
    mixed = parsed(["in.mp4", "--preset", "fast", "--steps", "6", "--inpaint-max-res", "0", *depth]).inpaint
    assert (mixed.steps, mixed.max_guidance, mixed.inpaint_max_res) == (6, 1.0, 0)
    reference = parsed(["in.mp4", "--preset", "reference"]).inpaint
    assert reference == parsed(["in.mp4"]).inpaint


def test_a_preset_whose_depth_model_is_missing_is_refused_clearly():
    known = {"inpaint_steps", "inpaint_guidance", "inpaint_max_res"}.__contains__
    with pytest.raises(StereoInputError, match="Video Depth Anything|video-depth-anything.*depth video"):
        preset_values("fast", {}, known)
    assert preset_values("fast", {}, known, ignored=("depth_model",))["inpaint_guidance"] == 1.0
    assert preset_values("fast", {}, lambda name: True)["depth_model"] == "video-depth-anything"


def test_help_names_what_each_preset_sets(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for values in PRESETS.values():
        for key, value in values.items():
            assert f"{key}={value}" in text


def test_the_convert_node_applies_a_preset_where_an_input_is_at_its_default(nodes):
    import sys

    convert_nodes = sys.modules[nodes["SC3D_StereoConvertVideo"].__module__]
    inputs = nodes["SC3D_StereoConvertVideo"].INPUT_TYPES()["required"]
    assert inputs["preset"][0] == ["none", *PRESETS]
    defaults = {name: options.get("default") for name, (_, options) in inputs.items()
                if name.startswith(("inpaint_", "depth_"))}
    changed = {**defaults, "inpaint_steps": 6}
    values = convert_nodes.with_preset(inputs, changed, "fast")
    assert (values["inpaint_steps"], values["inpaint_guidance"], values["inpaint_min_guidance"],
            values["inpaint_max_res"]) == (6, 1.0, 1.0, 1024)
    # The node's depth model is the loader on 'depth_model': the preset's must be the one connected.
    convert_nodes.check_preset_depth("fast", "video-depth-anything")
    with pytest.raises(Exception, match="connect the Video Depth Anything Model Loader there") as refused:
        convert_nodes.check_preset_depth("fast", "depthcrafter")
    assert type(refused.value).__name__ == "StereoInputError"  # the pack's own
