"""Presets: named groups of settings, the one table the command line, the convert node and the README use.

`reference` is the reference's pipeline (our defaults: DepthCrafter depth, 8 inpainting steps at guidance
1.01, inpainting at its working size of 1024 on the longest side). `fast` is the same pipeline with much
less work (bench/bench_compute.py counts it): Video Depth Anything depth instead of DepthCrafter's diffusion,
guidance exactly 1.0 (the reference's 1.01 doubles every inpainting call for a 1% difference) and half
the inpainting steps. Any setting given explicitly wins over the preset.
"""

from __future__ import annotations

from .errors import StereoInputError

# Setting -> value per preset. Keys are the settings' names on the convert node (the command line's are
# in CLI_NAMES); README.md quotes this table (tests/test_presets.py checks it does).
PRESETS: dict[str, dict[str, object]] = {
    "reference": {"depth_model": "depthcrafter", "inpaint_steps": 8, "inpaint_guidance": 1.01,
                  "inpaint_max_res": 1024},
    "fast": {"depth_model": "video-depth-anything", "inpaint_steps": 4, "inpaint_guidance": 1.0,
             "inpaint_max_res": 1024},
}
DESCRIPTIONS = {
    "depth_model": "depth model",
    "inpaint_steps": "inpainting denoising steps",
    "inpaint_guidance": "inpainting guidance (first and last frame of a chunk)",
    "inpaint_max_res": "longest side the inpainting works at",
}
# What a face does when it has no such setting (e.g. before a depth-model choice exists): a preset value
# other than this cannot be honoured there.
BUILT_IN = {"depth_model": "depthcrafter"}
# The command line's option names (argparse dests) where they differ from the keys above.
CLI_NAMES = {"inpaint_steps": ("steps",)}


def check_preset(name: str) -> dict[str, object]:
    if name not in PRESETS:
        raise StereoInputError(f"Unknown preset '{name}'; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]


def describe(name: str) -> str:
    """One line: what a preset sets."""
    return ", ".join(f"{key}={value}" for key, value in check_preset(name).items())


def preset_values(name: str, face_names: dict[str, tuple[str, ...]], known, ignored: tuple[str, ...] = ()
                  ) -> dict[str, object]:
    """The values a face gives its own settings for preset `name`: {face setting name: value}.

    face_names: the face's names of a key where they differ from it (one key may set several, e.g. the
    node's guidance of the first and the last frame). known(face_name): whether the face has that
    setting; a key it lacks is left out where the face does that anyway (BUILT_IN), else refused with a
    clear message. ignored: keys that do not apply to this run (e.g. depth_model with a depth video).
    """
    values = {}
    for key, value in check_preset(name).items():
        if key in ignored:
            continue
        names = [face for face in face_names.get(key, (key,)) if known(face)]
        if names:
            values.update({face: value for face in names})
        elif BUILT_IN.get(key) != value:
            raise StereoInputError(
                f"The '{name}' preset sets {DESCRIPTIONS[key]} to {value}, which this installation does not offer "
                f"yet. Give a depth video instead, or use another preset." if key == "depth_model" else
                f"The '{name}' preset sets {DESCRIPTIONS[key]}, which this installation does not offer.")
    return values
