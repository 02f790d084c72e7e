"""Still images to stereo images: one picture, its depth, the warped and inpainted right eye, written as a
stereo image file (side-by-side or top-bottom PNG/JPEG/WebP/TIFF/BMP, an anaglyph, MPO or JPS).

The stages are the video's (splatting.warp_clip, inpainting.inpaint_clip on a one-frame clip, layouts,
anaglyph); only reading and writing differ. The depth comes from a depth image or from one injected
estimator (DepthEstimator): whoever runs the conversion chooses the model in one place.

MPO (CIPA DC-007 "Multi-Picture Format"): the two views as two complete JPEGs one after the other; the first
carries the MP index (an APP2 "MPF" segment: a small TIFF directory listing each image's type, size and
offset), both carry their MP attributes (which viewpoint, numbered from the left). Both are typed
"Disparity" (multi-frame stereo), the first flagged as the representative image, as 3D cameras write them.
JPS: one side-by-side JPEG with the right eye on the left (the format's cross-eyed convention).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin

from .anaglyph import anaglyph
from .depthcrafter import DepthCrafterSettings, estimate_depth
from .disparity import DepthRange, DisparitySettings, normalized_depth
from .errors import StereoInputError
from .files import atomic_output
from .frames import check_clip, check_same_size, resize_frames
from .inpainting import InpaintSettings, inpaint_clip
from .layouts import LAYOUTS, VirtualScreen, compose_stereo
from .splatting import warp_clip

# Input suffixes -> the file format they are written back in by default.
IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff",
                  ".bmp": "bmp"}
FLAT_FORMATS = ("png", "jpeg", "webp", "tiff", "bmp")  # one picture per file
STEREO_FORMATS = ("mpo", "jps")  # formats that are stereo by themselves (their layout is fixed)
CHOSEN_FORMATS = ("png", "jpeg", "webp", *STEREO_FORMATS)  # what a user picks; TIFF and BMP are kept, not chosen
EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp", "mpo": ".mpo",
              "jps": ".jps"}
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "tiff": "TIFF", "bmp": "BMP"}
_HOLDS_ICC = {"png", "jpeg", "webp", "tiff", "mpo", "jps"}  # BMP has no colour profile Pillow writes
_LOSSY = {"jpeg", "webp", "mpo", "jps"}
DEFAULT_QUALITY = 95  # JPEG/WebP quality: visually lossless
# What a stereo picture can be packed as: the video layouts, a red/cyan anaglyph, or a stereo format.
ARRANGEMENTS = (*LAYOUTS, "anaglyph", *STEREO_FORMATS)

DepthEstimator = Callable[[torch.Tensor], torch.Tensor]
"""Depth of one picture: [1, H, W, 3] in 0..1 -> [1, h, w] (any size and scale; larger = nearer)."""
Inpainter = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(warped right [1, H, W, 3], holes [1, H, W] (1 = hole), left [1, H, W, 3]) -> filled right [1, H, W, 3]."""


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def format_of(path: Path) -> str | None:
    """The file format an image path's extension names (None for an extension that names none)."""
    suffix = Path(path).suffix.lower()
    return IMAGE_SUFFIXES.get(suffix) or {".mpo": "mpo", ".jps": "jps"}.get(suffix)


# --- reading -------------------------------------------------------------------------------------------


@dataclass
class Photo:
    pixels: torch.Tensor  # [1, H, W, 3] float32 in 0..1, upright (EXIF orientation applied)
    icc_profile: bytes | None = None  # the source's colour profile, where it applies to the RGB pixels


def _open_upright(path: Path, what: str) -> Image.Image:
    """The picture of an image file with its EXIF orientation applied, fully read."""
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except FileNotFoundError as error:
        raise StereoInputError(f"The {what} '{path}' does not exist.") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise StereoInputError(f"Cannot read the {what} '{path}' ({error}). Check that it is a complete "
                               f"PNG, JPEG, WebP, TIFF or BMP file.") from error


def _to_float(image: Image.Image) -> np.ndarray:
    """[H, W] or [H, W, C] float32 in 0..1 (16-bit and 32-bit grey kept at full precision)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return np.asarray(image.convert("I"), dtype=np.float32) / 65535.0
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    return np.asarray(image, dtype=np.float32) / 255.0


def load_photo(path: Path) -> Photo:
    image = _open_upright(path, "image")
    icc = image.info.get("icc_profile") if image.mode in ("RGB", "RGBA", "RGBX", "P", "PA") else None
    if image.mode.startswith("I") or image.mode in ("F", "L", "LA", "1"):
        grey = _to_float(image.convert("L") if image.mode in ("LA", "1") else image)
        pixels = np.repeat(grey.clip(0, 1)[..., None], 3, axis=-1)
    else:
        pixels = _to_float(image.convert("RGB"))
    return Photo(pixels=torch.from_numpy(np.ascontiguousarray(pixels)).unsqueeze(0), icc_profile=icc or None)


# A depth image whose channels differ more than this on average is a colour picture (e.g. a colormap).
_COLOUR_SPREAD = 0.02


def load_depth_image(path: Path) -> torch.Tensor:
    """[1, H, W] depth from a grey depth image (8 or 16 bit; white = near unless inverted later)."""
    image = _open_upright(path, "depth image")
    if image.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        rgb = _to_float(image.convert("RGB"))
        if float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1))) > _COLOUR_SPREAD:
            raise StereoInputError(
                f"The depth image '{path}' is in colour (e.g. a colormap such as inferno), not grey depth: its "
                f"brightness is not its depth. Use a greyscale depth image (white = near).")
        depth = rgb.mean(axis=-1)
    else:
        depth = _to_float(image.convert("L") if image.mode in ("LA", "1") else image)
    return torch.from_numpy(np.ascontiguousarray(depth)).unsqueeze(0)


def check_depth_matches(depth: torch.Tensor, picture: torch.Tensor, depth_path: Path) -> None:
    """Refuse a depth image turned the other way than the upright photo (e.g. made from the unrotated pixels)."""
    (height, width), (depth_h, depth_w) = picture.shape[1:3], depth.shape[1:3]
    if height != width and depth_h != depth_w and (height > width) != (depth_h > depth_w):
        raise StereoInputError(
            f"The depth image '{depth_path}' is {depth_w}x{depth_h} but the photo is {width}x{height} upright "
            f"(EXIF orientation applied): the depth is turned the other way. Make the depth from the upright photo.")


# --- the stereo pair -----------------------------------------------------------------------------------


def stereo_pair(picture: torch.Tensor, depth: torch.Tensor, disparity: DisparitySettings = DisparitySettings(),
                inpainter: Inpainter | None = None, device: torch.device | str | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(left, right) [1, H, W, 3] of one picture [1, H, W, 3] and its depth (any size): the picture is the
    left eye, the right eye is warped from it and, with an inpainter, its holes filled."""
    right, holes = warp_clip(picture, depth, disparity, device=device)
    if inpainter is not None:
        right = inpainter(right, holes, picture).clamp(0.0, 1.0)
    return picture, right


def depthcrafter_estimator(model, settings: DepthCrafterSettings = DepthCrafterSettings(),
                           seed: int = 0) -> DepthEstimator:
    """DepthCrafter on a one-frame clip, as the DepthCrafter Depth node runs it on one image."""
    def estimate(picture: torch.Tensor) -> torch.Tensor:
        return estimate_depth(model, picture, settings, seed=seed).depth

    return estimate


def depth_anything_v2_estimator(model, input_size: int) -> DepthEstimator:
    """Depth Anything V2 on the picture, min-max normalised over it (white = near)."""
    from .depth_anything_v2 import estimate_depth as estimate_dav2

    return lambda picture: estimate_dav2(model, picture, input_size)


def video_depth_anything_estimator(model, input_size: int) -> DepthEstimator:
    """Video Depth Anything on a one-frame clip (its official padding makes one window of it)."""
    from .video_depth_anything import estimate_depth as estimate_vda

    return lambda picture: estimate_vda(model, picture, input_size)


def stereocrafter_inpainter(model, settings: InpaintSettings = InpaintSettings(), seed: int = 0) -> Inpainter:
    """StereoCrafter's inpainting of a one-frame clip (one chunk of one frame)."""
    def inpaint(warped: torch.Tensor, holes: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return inpaint_clip(model, warped, holes, settings, left=left, seed=seed).frames

    return inpaint


# --- writing -------------------------------------------------------------------------------------------


def to_pil(picture: torch.Tensor) -> Image.Image:
    """An 8-bit RGB picture from [H, W, 3] or [1, H, W, 3] in 0..1."""
    if picture.ndim == 4:
        picture = picture[0]
    pixels = picture.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def stereo_picture(left: torch.Tensor, right: torch.Tensor, arrangement: str = "sbs", swap: bool = False,
                   screen: VirtualScreen = VirtualScreen(), anaglyph_mode: str = "color") -> torch.Tensor:
    """One picture [1, H', W', 3] of a pair: a layout, an anaglyph, or JPS's side-by-side (right eye first)."""
    if arrangement == "anaglyph":
        return anaglyph(left, right, anaglyph_mode)
    if arrangement == "jps":
        return compose_stereo(left, right, "sbs", swap=True)
    return compose_stereo(left, right, arrangement, swap=swap, screen=screen)


def _encoder_options(file_format: str, icc_profile: bytes | None, quality: int,
                     text: dict[str, str] | None = None) -> dict:
    options = {}
    if text and file_format == "png":  # e.g. the ComfyUI workflow, as core Save Image stores it
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        options["pnginfo"] = info
    if icc_profile and file_format in _HOLDS_ICC:
        options["icc_profile"] = icc_profile
    if file_format in _LOSSY:
        options["quality"] = quality
    if file_format == "png":
        options["compress_level"] = 6
    if file_format == "tiff":
        options["compression"] = "tiff_deflate"  # lossless and far smaller than raw
    return options


def save_picture(path: Path, picture: torch.Tensor, file_format: str, icc_profile: bytes | None = None,
                 quality: int = DEFAULT_QUALITY, text: dict[str, str] | None = None) -> Path:
    """Write one picture atomically (complete under its name, or not there); `text`: PNG text chunks."""
    if file_format not in FLAT_FORMATS:
        raise StereoInputError(f"image format must be one of {FLAT_FORMATS}, got {file_format!r}.")
    with atomic_output(path) as partial:
        to_pil(picture).save(partial, _PILLOW_FORMATS[file_format],
                             **_encoder_options(file_format, icc_profile, quality, text))
    return Path(path)


# CIPA DC-007: MP entry types and flags, and the MPF tags written.
_MP_DISPARITY = 0x020002  # multi-frame image, disparity (stereo) type
_MP_REPRESENTATIVE = 1 << 29
_MPF_VERSION, _MPF_IMAGES, _MPF_ENTRIES = 0xB000, 0xB001, 0xB002
_MPF_INDIVIDUAL_NUMBER, _MPF_BASE_VIEWPOINT, _MPF_CONVERGENCE, _MPF_BASELINE = 0xB101, 0xB204, 0xB205, 0xB206
_UNKNOWN_RATIONAL = (0xFFFFFFFF, 0xFFFFFFFF)  # the standard's "unknown" for the angle and the baseline
_TIFF_UNDEFINED, _TIFF_LONG, _TIFF_RATIONAL, _TIFF_SRATIONAL = 7, 4, 5, 10


def _tiff_directory(entries: list[tuple[int, int, int, bytes]], start: int, next_ifd: int) -> tuple[bytes, bytes]:
    """A little-endian TIFF directory at offset `start` (from the MP header): (directory, its value area).
    entries: (tag, type, count, value bytes); values over 4 bytes go to the value area after the directory."""
    area_start = start + 2 + 12 * len(entries) + 4
    directory, area = struct.pack("<H", len(entries)), b""
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            directory += struct.pack("<HHL", tag, kind, count) + value.ljust(4, b"\0")
        else:
            directory += struct.pack("<HHLL", tag, kind, count, area_start + len(area))
            area += value
    return directory + struct.pack("<L", next_ifd), area


def _attributes(number: int) -> list[tuple[int, int, int, bytes]]:
    """MP attributes of the view numbered `number` from the left (1 = the left eye)."""
    return [(_MPF_VERSION, _TIFF_UNDEFINED, 4, b"0100"),
            (_MPF_INDIVIDUAL_NUMBER, _TIFF_LONG, 1, struct.pack("<L", number)),
            (_MPF_BASE_VIEWPOINT, _TIFF_LONG, 1, struct.pack("<L", 1)),
            (_MPF_CONVERGENCE, _TIFF_SRATIONAL, 1, struct.pack("<LL", *_UNKNOWN_RATIONAL)),
            (_MPF_BASELINE, _TIFF_RATIONAL, 1, struct.pack("<LL", *_UNKNOWN_RATIONAL))]


def _mpf_segment(tiff: bytes) -> bytes:
    body = b"MPF\0" + tiff
    return b"\xff\xe2" + struct.pack(">H", 2 + len(body)) + body


def _insert_segment(jpeg: bytes, segment: bytes) -> tuple[bytes, int]:
    """The JPEG with `segment` after its APP0/APP1 segments (where DC-007 puts the MPF segment), and the
    offset of the segment's MP header (its "II*" after the marker, length and "MPF\\0")."""
    position = 2  # after SOI
    while jpeg[position:position + 2] in (b"\xff\xe0", b"\xff\xe1"):
        position += 2 + struct.unpack(">H", jpeg[position + 2:position + 4])[0]
    return jpeg[:position] + segment + jpeg[position:], position + 8


def mpo_bytes(views: list[Image.Image], icc_profile: bytes | None = None, quality: int = DEFAULT_QUALITY) -> bytes:
    """An MPO file of stereo views, ordered from the left viewpoint to the right."""
    jpegs = []
    for view in views:
        buffer = io.BytesIO()
        view.save(buffer, "JPEG", **_encoder_options("jpeg", icc_profile, quality))
        jpegs.append(buffer.getvalue())
    header = b"II*\0" + struct.pack("<L", 8)  # little-endian; the first directory right after

    def with_mpf(jpeg: bytes, directories: bytes) -> tuple[bytes, int]:
        return _insert_segment(jpeg, _mpf_segment(header + directories))

    # Every view but the first carries its attributes only.
    others = [with_mpf(jpeg, b"".join(_tiff_directory(_attributes(number), 8, 0)))[0]
              for number, jpeg in enumerate(jpegs[1:], 2)]

    def first_view(entries: bytes) -> tuple[bytes, int]:
        """The first view with the index (listing `entries`), then its own attributes."""
        index_tags = [(_MPF_VERSION, _TIFF_UNDEFINED, 4, b"0100"),
                      (_MPF_IMAGES, _TIFF_LONG, 1, struct.pack("<L", len(jpegs))),
                      (_MPF_ENTRIES, _TIFF_UNDEFINED, len(entries), entries)]
        index, area = _tiff_directory(index_tags, 8, 0)
        attributes_start = 8 + len(index) + len(area)
        index, area = _tiff_directory(index_tags, 8, attributes_start)
        return with_mpf(jpegs[0], index + area + b"".join(_tiff_directory(_attributes(1), attributes_start, 0)))

    # The entries' sizes and offsets fix the first view's size whatever their values: build it twice.
    provisional, header_at = first_view(b"\0" * 16 * len(jpegs))
    entries, offset = b"", len(provisional) - header_at  # offsets count from the first view's MP header
    for number, size in enumerate([len(provisional), *map(len, others)]):
        flags = _MP_DISPARITY | (_MP_REPRESENTATIVE if number == 0 else 0)
        entries += struct.pack("<LLLHH", flags, size, offset if number else 0, 0, 0)
        offset += size if number else 0
    first, _ = first_view(entries)
    return first + b"".join(others)


def save_mpo(path: Path, left: torch.Tensor, right: torch.Tensor, icc_profile: bytes | None = None,
             quality: int = DEFAULT_QUALITY) -> Path:
    """Write the left and right views as an MPO file (left first), atomically."""
    data = mpo_bytes([to_pil(left), to_pil(right)], icc_profile, quality)
    with atomic_output(path) as partial:
        partial.write_bytes(data)
    return Path(path)


def save_stereo_image(path: Path, left: torch.Tensor, right: torch.Tensor, arrangement: str = "sbs",
                      file_format: str = "png", swap: bool = False, screen: VirtualScreen = VirtualScreen(),
                      anaglyph_mode: str = "color", icc_profile: bytes | None = None,
                      quality: int = DEFAULT_QUALITY, text: dict[str, str] | None = None) -> Path:
    """Write a stereo pair (one frame each, [1, H, W, 3]) as one file: `arrangement` is a layout
    (sbs, half-sbs, tb, half-tb, vr180) or anaglyph, in `file_format` (png, jpeg, webp, tiff, bmp), or mpo /
    jps (which fix the file format). `text`: PNG text chunks."""
    if arrangement not in ARRANGEMENTS:
        raise StereoInputError(f"stereo image format must be one of {ARRANGEMENTS}, got {arrangement!r}.")
    left, right = check_clip(left, "left"), check_clip(right, "right")
    if left.shape[0] != 1 or right.shape[0] != 1:
        raise StereoInputError(f"A stereo image is one frame of each eye, got {left.shape[0]} left and "
                               f"{right.shape[0]} right frames.")
    check_same_size(left, right, "left", "right")
    if arrangement == "mpo":
        return save_mpo(path, left, right, icc_profile, quality)
    picture = stereo_picture(left, right, arrangement, swap, screen, anaglyph_mode)
    return save_picture(path, picture, "jpeg" if arrangement == "jps" else file_format, icc_profile, quality, text)


# --- one photo, file to file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoSettings:
    disparity: DisparitySettings = DisparitySettings()
    layout: str = "sbs"  # of flat files; an .mpo or .jps output is that format whatever the layout
    swap_eyes: bool = False
    screen: VirtualScreen = VirtualScreen()
    anaglyph_mode: str = "color"  # of the "anaglyph" output, where one is asked for
    quality: int = DEFAULT_QUALITY

    def check(self) -> None:
        if self.layout not in LAYOUTS:
            raise StereoInputError(f"layout must be one of {LAYOUTS}, got {self.layout!r}.")
        if not 1 <= self.quality <= 100:
            raise StereoInputError(f"image quality must be 1..100, got {self.quality}.")


@dataclass
class PhotoJob:
    source: Path
    outputs: dict[str, Path]  # "stereo" (always), "anaglyph", "depth"
    depth_image: Path | None = None

    @property
    def output(self) -> Path:
        return self.outputs["stereo"]


def flat_format(path: Path) -> str:
    """The flat file format an output path is written in (an extra output of an MPO/JPS is a JPEG)."""
    found = format_of(path)
    return "jpeg" if found in STEREO_FORMATS else found


def convert_photo(job: PhotoJob, settings: PhotoSettings, estimate_depth: DepthEstimator | None = None,
                  inpainter: Inpainter | None = None, device: torch.device | str | None = None) -> None:
    """Convert one image file to its stereo image (and the anaglyph and depth pictures asked for); the output's
    extension says its file format (.mpo and .jps: those stereo formats, whatever settings.layout)."""
    settings.check()
    if format_of(job.output) is None:
        raise StereoInputError(f"Cannot write the image '{job.output}': its extension names no image format.")
    photo = load_photo(job.source)
    if job.depth_image is not None:
        depth = load_depth_image(job.depth_image)
        check_depth_matches(depth, photo.pixels, job.depth_image)
    elif estimate_depth is None:
        raise StereoInputError(f"'{job.source}' needs a depth image or a depth model.")
    else:
        depth = estimate_depth(photo.pixels)
    settings.disparity.validate(photo.pixels.shape[2])
    left, right = stereo_pair(photo.pixels, depth, settings.disparity, inpainter, device)
    icc = photo.icc_profile
    stereo, kind = job.output, format_of(job.output)
    if kind in STEREO_FORMATS:
        save_stereo_image(stereo, left, right, kind, icc_profile=icc, quality=settings.quality)
    else:
        save_stereo_image(stereo, left, right, settings.layout, kind, settings.swap_eyes, settings.screen,
                          icc_profile=icc, quality=settings.quality)
    if "anaglyph" in job.outputs:
        path = job.outputs["anaglyph"]
        save_stereo_image(path, left, right, "anaglyph", flat_format(path), anaglyph_mode=settings.anaglyph_mode,
                          icc_profile=icc, quality=settings.quality)
    if "depth" in job.outputs:  # normalised as the video's depth output: white = near
        values = resize_frames(depth.float(), *photo.pixels.shape[1:3])
        grey = normalized_depth(values, DepthRange.of(values), slice(0, 1), DisparitySettings())
        path = job.outputs["depth"]
        save_picture(path, grey.unsqueeze(-1).expand(-1, -1, -1, 3), flat_format(path), quality=settings.quality)


def is_finished(job: PhotoJob) -> bool:
    """Every output is there (each was written atomically, so being there means being complete)."""
    return all(path.is_file() and path.stat().st_size > 0 for path in job.outputs.values())
