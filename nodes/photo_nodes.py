"""Save Stereo Image: a stereo pair written as image files (side-by-side, top-bottom, anaglyph, MPO, JPS)."""

from __future__ import annotations

from ..stereo_core.errors import StereoInputError
from ..stereo_core.frames import check_clip, check_frame_counts, check_same_size
from ..stereo_core.photos import save_picture, save_stereo_image, stereo_picture
from .comfy_adapter import numbered_files, output_directory, temp_directory, workflow_text
from .common import CATEGORY

# What each choice writes: (arrangement for stereo_core.photos, file suffix).
FORMATS = {"sbs": ("sbs", ".png"), "half-sbs": ("half-sbs", ".png"), "tb": ("tb", ".png"),
           "mpo": ("mpo", ".mpo"), "jps": ("jps", ".jps"), "anaglyph": ("anaglyph", ".png")}


class SaveStereoImage:
    DESCRIPTION = (
        "Saves stereo pairs as image files in ComfyUI's output folder, numbered as Save Image numbers its files, "
        "and shows them. sbs: left | right at full width; half-sbs: each eye squeezed to half width (3D TVs); tb: "
        "left above right; anaglyph: red/cyan (left eye red); these are lossless PNGs with the workflow inside. "
        "mpo: the two views as two JPEGs in one file, left then right (3D cameras, 3D TVs and stereo viewers); "
        "jps: one side-by-side JPEG with the right eye on the left (the format's cross-eyed convention). A batch "
        "gives one file per frame."
    )
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    RETURN_NAMES = ()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "left": ("IMAGE", {"tooltip": "The left eye (your image, e.g. from Load Image)."}),
            "right": ("IMAGE", {"tooltip": "The right eye, same size and frames as 'left' (e.g. from StereoCrafter "
                                           "Inpaint Chunked)."}),
            "format": (list(FORMATS), {"default": "sbs",
                                       "tooltip": "sbs / half-sbs / tb / anaglyph: a PNG; mpo: both views in one "
                                                  "file (3D cameras and TVs); jps: a side-by-side JPEG, right eye "
                                                  "first."}),
            "filename_prefix": ("STRING", {"default": "stereo3d/photo",
                                           "tooltip": "File name start, inside ComfyUI's output folder (a folder "
                                                      "part such as 'stereo3d/' makes that folder). A number is "
                                                      "added as Save Image adds it."}),
        }, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save(self, left, right, format, filename_prefix, prompt=None, extra_pnginfo=None):
        if format not in FORMATS:
            raise StereoInputError(f"format must be one of {list(FORMATS)}, got {format!r}.")
        left, right = check_clip(left, "left"), check_clip(right, "right")
        check_frame_counts(left.shape[0], right.shape[0], "left", "right", broadcast_one=False)
        check_same_size(left, right, "left", "right")
        arrangement, suffix = FORMATS[format]
        folder = output_directory()
        target, names = numbered_files(folder, filename_prefix, left.shape[0], suffix)
        subfolder = target.resolve().relative_to(folder.resolve()).as_posix()
        text = workflow_text(prompt, extra_pnginfo) if suffix == ".png" else None
        shown = []
        for index, name in enumerate(names):
            pair = left[index:index + 1], right[index:index + 1]
            save_stereo_image(target / name, *pair, arrangement, "png", text=text)
            if suffix == ".png":
                shown.append({"filename": name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"})
            else:  # browsers show neither MPO nor JPS: a PNG of what the file holds, in the temp folder
                preview = temp_directory() / f"{name}.preview.png"
                preview.parent.mkdir(parents=True, exist_ok=True)
                save_picture(preview, stereo_picture(*pair, "sbs" if format == "mpo" else "jps"), "png")
                shown.append({"filename": preview.name, "subfolder": "", "type": "temp"})
        return {"ui": {"images": shown}}
