"""Stereo and VR180 metadata in MP4 files: Google's Spherical Video V2 boxes, written and read.

Players and video sites see a file as 3D from boxes in the video track's sample entry
(github.com/google/spatial-media, docs/spherical-video-v2-rfc.md):
- `st3d` (FullBox): stereo_mode 0 mono, 1 top-bottom (left eye on top), 2 left-right (left eye
  on the left), 3 custom, 4 right-left;
- `sv3d` (Box) holding `svhd` (FullBox: the tool's name, NUL-terminated UTF-8) and `proj` (Box)
  holding `prhd` (FullBox: yaw, pitch, roll as 16.16 fixed-point degrees) and one projection box,
  here `equi` (FullBox: the share of a full 360x180 equirectangular picture cropped from the top,
  bottom, left and right, as 0.32 fixed point; 180 degrees wide = a quarter off each side).
Both come after the codec's own boxes and before the optional trailing ones (`pasp`, `clap`,
`btrt`), `sv3d` after `st3d`.

Apple Vision Pro reads neither: since visionOS 26 its Projected Media Profile plays frame-packed
video as 3D from Apple's own boxes in the same sample entry (Apple, "QuickTime and ISO Base Media
File Formats and Spatial and Immersive Media"; the field layouts below are the ones FFmpeg's
libavformat reads in mov.c mov_read_vexu/mov_read_eyes/mov_read_pack/mov_read_hfov and writes in
movenc.c mov_write_vexu_tag):
- `vexu` (Box, "video extended usage") holding, in this order,
  `proj` (Box) holding `prji` (FullBox: projection_kind, a four-character code: `rect`
  rectilinear, `equi` equirectangular, `hequ` half-equirectangular, `fish`, `prim`);
  `eyes` (Box) holding `stri` (FullBox: one byte of flags, bit 0 has_left_eye_view, bit 1
  has_right_eye_view, bit 2 has_additional_views, bit 3 eye_views_reversed) and optionally
  `hero` (FullBox: hero_eye_indicator, 0 none, 1 left, 2 right), `cams`/`blin` (the camera
  baseline in micrometres) and `cmfy`/`dadj` (a disparity adjustment in 1/10000 of the width);
  `pack` (Box) holding `pkin` (FullBox: view_packing_kind, `side` side-by-side or `over`
  over-under);
- `hfov` (Box, beside `vexu`: the horizontal field of view in thousandths of a degree), which a
  rectilinear picture needs to be shown at its size.
They follow `st3d`/`sv3d` (FFmpeg's muxer writes them in that order, and FFmpeg's reader refuses
an `st3d` that comes after the stereo information of `vexu`). We write no `cams`/`cmfy`: a
converted 2D video has no camera baseline, and its disparity is already set where it should be.

The writer works on a finished file: it reads the `moov` box (small), rebuilds the video sample
entry with the new boxes, and copies everything else byte for byte in chunks (files of any
length, constant memory). When `moov` comes before the media data (`faststart`), every chunk
offset behind it moves by the size change, so `stco`/`co64` tables are rewritten (a 32-bit table
that would overflow becomes a `co64`). The result goes to a temporary name in the destination's
folder and is renamed over the destination at the end.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import StereoInputError
from .files import atomic_output
from .layouts import VirtualScreen

STEREO_MODES = {"mono": 0, "top-bottom": 1, "left-right": 2, "custom": 3, "right-left": 4}
METADATA_SOURCE = "StereoCrafter 3D"

# Boxes whose payload is nothing but boxes, on the way from moov to the sample table.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
# Optional boxes that close a VisualSampleEntry: the new boxes go before the first of them.
_TRAILING = {b"pasp", b"clap", b"btrt", b"sinf"}
# The boxes this module writes into a sample entry (and replaces when tagging again).
_SPATIAL_KINDS = (b"st3d", b"sv3d", b"vexu", b"hfov")
# A VisualSampleEntry's fixed fields after its 8-byte header (ISO/IEC 14496-12, 12.1.3).
_VISUAL_ENTRY_FIELDS = 78
_COPY_CHUNK = 8 << 20


# Apple's four-character codes (prji, pkin) and hero eye numbers, by the names used here.
PROJECTION_KINDS = {"rectilinear": b"rect", "equirectangular": b"equi", "half-equirectangular": b"hequ",
                    "fisheye": b"fish", "parametric-immersive": b"prim"}
VIEW_PACKINGS = {"side-by-side": b"side", "over-under": b"over"}
HERO_EYES = {"none": 0, "left": 1, "right": 2}
# The stri flags.
_HAS_LEFT, _HAS_RIGHT, _EYES_REVERSED = 1, 2, 8


@dataclass(frozen=True)
class AppleProjectedMedia:
    """What Apple's `vexu` (and for a flat picture `hfov`) box says about a frame-packed stereo video."""

    view_packing: str = "side-by-side"
    """A key of VIEW_PACKINGS: how the two eyes share the frame."""
    projection: str = "rectilinear"
    """A key of PROJECTION_KINDS: "rectilinear" for a flat picture, "half-equirectangular" for VR180."""
    eyes_reversed: bool = False
    """True when the right eye comes first (on the left, or on top)."""
    hero_eye: str = "left"
    """A key of HERO_EYES: the eye to show where only one is shown. Ours is the left, the source's own picture."""
    horizontal_fov: float | None = None
    """Degrees the picture spans horizontally (the hfov box, kept to a thousandth); None writes no hfov."""


@dataclass(frozen=True)
class SpatialMetadata:
    stereo_mode: str | None = "left-right"
    """A key of STEREO_MODES; None writes no st3d (a layout Google's box has no value for)."""
    projection: str | None = None
    """None for a flat video, "equirectangular" for 180/360-degree video."""
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """Equirectangular crop (top, bottom, left, right) as shares of the full sphere's picture."""
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Yaw, pitch, roll in degrees."""
    metadata_source: str = METADATA_SOURCE
    apple: AppleProjectedMedia | None = None
    """Apple's Projected Media Profile boxes (vexu, hfov); None writes none."""


# Half of the 360-degree width cropped, a quarter on each side: a 180x180-degree picture. To Apple
# the same frame is half-equirectangular (180 degrees by definition, so no hfov), eyes side by side.
VR180 = SpatialMetadata("left-right", "equirectangular", bounds=(0.0, 0.0, 0.25, 0.25),
                        apple=AppleProjectedMedia("side-by-side", "half-equirectangular"))

# A flat picture is shown as wide as the VR180 layout's virtual screen (VirtualScreen.fov, 70 degrees by
# default): the same movie looks the same size, with the same depth, in our VR180 file and on Vision Pro.
FLAT_FIELD_OF_VIEW = VirtualScreen.fov

_LAYOUT_MODES = {"sbs": "left-right", "half-sbs": "left-right", "tb": "top-bottom", "half-tb": "top-bottom"}
_SWAPPED_MODES = {"left-right": "right-left", "top-bottom": None}  # st3d has no bottom-top value
_PACKINGS = {"left-right": "side-by-side", "top-bottom": "over-under"}


def metadata_for_layout(layout: str, swap: bool = False,
                        field_of_view: float = FLAT_FIELD_OF_VIEW) -> SpatialMetadata | None:
    """The boxes a layout's file should carry; None for a layout no box describes (an anaglyph, which is a
    flat picture to players). `field_of_view`: degrees a flat layout's picture spans (Apple's hfov)."""
    if layout == "vr180":
        if swap:
            return None
        return VR180
    mode = _LAYOUT_MODES.get(layout)
    if mode is None:
        return None
    apple = AppleProjectedMedia(_PACKINGS[mode], "rectilinear", eyes_reversed=swap,
                                horizontal_fov=round(field_of_view, 3))
    return SpatialMetadata(_SWAPPED_MODES[mode] if swap else mode, apple=apple)


# File-name tags that headset players read (see docs/players.md for who reads what).
_TAGS = {"sbs": "_LR", "half-sbs": "_HSBS", "tb": "_TB", "half-tb": "_HOU", "vr180": "_180_LR"}
_SWAPPED_TAGS = {"sbs": "_RL", "half-sbs": "_RL", "tb": "_BT", "half-tb": "_BT"}


def filename_tag(layout: str, swap: bool = False) -> str:
    """The suffix (before the extension) that tells players a layout, e.g. "_LR" or "_180_LR"; "" if none."""
    return (_SWAPPED_TAGS if swap else _TAGS).get(layout, "")


# --- writing ---------------------------------------------------------------------------------


def write_spatial_metadata(source: str | Path, metadata: SpatialMetadata,
                           destination: str | Path | None = None) -> Path:
    """Copy the MP4 `source` to `destination` (default: replace `source`) with `metadata` in its video track.

    Existing st3d/sv3d/vexu/hfov boxes are replaced, so tagging twice gives the same file as tagging once.
    """
    _check_metadata(metadata)
    source = Path(source)
    destination = Path(destination) if destination is not None else source
    top = _top_level_boxes(source)
    moov = _the_moov(top, source, rewriting=True)
    tree = _moov_tree(source, moov)
    entry_path = _video_sample_entry(tree, source)
    _replace_spatial_boxes(entry_path[-1], metadata)
    # Media behind moov moves by however much moov grows.
    moved = [box for box in top if box.offset > moov.offset]
    new_moov = _serialize_with_offsets(tree, moov.offset, moov.size, bool(moved))
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(destination) as partial, open(partial, "wb") as handle_out, open(source, "rb") as handle:
        for box in top:
            if box is moov:
                handle_out.write(new_moov)
                continue
            handle.seek(box.offset)
            _copy_bytes(handle, handle_out, box.size)
    return destination


def _check_metadata(metadata: SpatialMetadata) -> None:
    if metadata.stereo_mode is not None and metadata.stereo_mode not in STEREO_MODES:
        raise StereoInputError(f"stereo mode must be one of {tuple(STEREO_MODES)}, got {metadata.stereo_mode!r}.")
    if metadata.stereo_mode is None and metadata.projection is None and metadata.apple is None:
        raise StereoInputError("The metadata says nothing (no stereo mode, projection or Apple boxes) to write.")
    if metadata.apple is not None:
        _check_apple(metadata.apple)
    if metadata.projection not in (None, "equirectangular"):
        raise StereoInputError(f"projection must be None or 'equirectangular', got {metadata.projection!r}.")
    top, bottom, left, right = metadata.bounds
    if not all(0.0 <= value < 1.0 for value in metadata.bounds) or top + bottom >= 1 or left + right >= 1:
        raise StereoInputError(f"equirectangular crop bounds must be shares in 0..1 leaving a picture, got "
                               f"{metadata.bounds}.")


def _check_apple(apple: AppleProjectedMedia) -> None:
    for name, value, allowed in (("view packing", apple.view_packing, VIEW_PACKINGS),
                                 ("projection kind", apple.projection, PROJECTION_KINDS),
                                 ("hero eye", apple.hero_eye, HERO_EYES)):
        if value not in allowed:
            raise StereoInputError(f"Apple {name} must be one of {tuple(allowed)}, got {value!r}.")
    fov = apple.horizontal_fov
    if fov is not None and not (isinstance(fov, (int, float)) and 0 < fov <= 360):
        raise StereoInputError(f"horizontal field of view must be an angle in (0, 360] degrees, got {fov!r}.")


def _spatial_boxes(metadata: SpatialMetadata) -> list[bytes]:
    boxes = []
    if metadata.stereo_mode is not None:
        boxes.append(_full_box(b"st3d", struct.pack(">B", STEREO_MODES[metadata.stereo_mode])))
    if metadata.projection == "equirectangular":
        header = _full_box(b"svhd", metadata.metadata_source.encode("utf-8") + b"\0")
        pose = _full_box(b"prhd", struct.pack(">iii", *(round(angle * 65536) for angle in metadata.pose)))
        fixed = [min(round(share * 2**32), 2**32 - 1) for share in metadata.bounds]
        equi = _full_box(b"equi", struct.pack(">IIII", *fixed))
        boxes.append(_box(b"sv3d", header + _box(b"proj", pose + equi)))
    if metadata.apple is not None:
        boxes += _apple_boxes(metadata.apple)
    return boxes


def _apple_boxes(apple: AppleProjectedMedia) -> list[bytes]:
    """vexu (proj, eyes, pack, in that order: FFmpeg takes the packing from pack only when it follows eyes)
    and, with a field of view, hfov."""
    projection = _box(b"proj", _full_box(b"prji", PROJECTION_KINDS[apple.projection]))
    views = _HAS_LEFT | _HAS_RIGHT | (_EYES_REVERSED if apple.eyes_reversed else 0)
    eyes = _full_box(b"stri", struct.pack(">B", views))
    if apple.hero_eye != "none":
        eyes += _full_box(b"hero", struct.pack(">B", HERO_EYES[apple.hero_eye]))
    packing = _box(b"pack", _full_box(b"pkin", VIEW_PACKINGS[apple.view_packing]))
    boxes = [_box(b"vexu", projection + _box(b"eyes", eyes) + packing)]
    if apple.horizontal_fov is not None:
        boxes.append(_box(b"hfov", struct.pack(">I", round(apple.horizontal_fov * 1000))))
    return boxes


def _box(kind: bytes, payload: bytes) -> bytes:
    size = 8 + len(payload)
    if size < 2**32:
        return struct.pack(">I4s", size, kind) + payload
    return struct.pack(">I4sQ", 1, kind, size + 8) + payload


def _full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _copy_bytes(source, target, count: int) -> None:
    while count > 0:
        block = source.read(min(_COPY_CHUNK, count))
        if not block:
            raise StereoInputError("The MP4 file ended before its last box did: it is truncated.")
        target.write(block)
        count -= len(block)


# --- the box tree ----------------------------------------------------------------------------


@dataclass
class _TopBox:
    kind: bytes
    offset: int
    size: int


class _Node:
    """A box in the moov tree: a container's children, or a leaf's raw payload."""

    def __init__(self, kind: bytes, payload: bytes, children: list["_Node"] | None = None, prefix: bytes = b""):
        self.kind = kind
        self.payload = payload  # leaves only
        self.children = children  # containers, stsd and sample entries
        self.prefix = prefix  # bytes before the children (stsd's version/count, an entry's fixed fields)

    def serialize(self) -> bytes:
        if self.children is None:
            return _box(self.kind, self.payload)
        return _box(self.kind, self.prefix + b"".join(child.serialize() for child in self.children))


def _top_level_boxes(path: Path) -> list[_TopBox]:
    if not path.is_file():
        raise StereoInputError(f"Video file '{path}' does not exist.")
    boxes, end = [], path.stat().st_size
    with open(path, "rb") as handle:
        offset = 0
        while offset < end:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                raise StereoInputError(f"'{path}' is not a complete MP4 file (a box header is cut off at {offset}).")
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:
                if len(header) < 16:
                    raise StereoInputError(f"'{path}' is not a complete MP4 file.")
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:
                size = end - offset
            if size < 8 or offset + size > end:
                raise StereoInputError(
                    f"'{path}' is not an MP4 file this tool can read (box '{kind.decode('latin-1')}' at byte {offset} "
                    f"has size {size}, file size {end})."
                )
            boxes.append(_TopBox(kind, offset, size))
            offset += size
    return boxes


def _the_moov(top: list[_TopBox], path: Path, rewriting: bool = False) -> _TopBox:
    """The file's one moov box; rewriting: also refuse fragmented files, whose offsets are not rewritten."""
    kinds = [box.kind for box in top]
    if kinds.count(b"moov") != 1:
        raise StereoInputError(f"'{path}' has {kinds.count(b'moov')} 'moov' boxes; an MP4 file has exactly one.")
    if rewriting and b"moof" in kinds:
        raise StereoInputError(
            f"'{path}' is a fragmented MP4 (moof boxes), whose data offsets this tool does not rewrite. Write a "
            f"regular MP4 (without frag_keyframe/empty_moov movflags) and tag that."
        )
    return top[kinds.index(b"moov")]


def _moov_tree(path: Path, moov: _TopBox) -> "_Node":
    with open(path, "rb") as handle:
        handle.seek(moov.offset)
        return _parse_container(handle.read(moov.size))


def _read_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, payload) of the boxes that fill `data`."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise StereoInputError(f"The MP4 header is damaged (box '{kind.decode('latin-1')}' overruns its parent).")
        boxes.append((kind, data[offset + header:offset + size]))
        offset += size
    return boxes


def _parse_container(moov: bytes) -> _Node:
    (kind, payload), = _read_boxes(moov)
    return _parse_node(kind, payload)


def _parse_node(kind: bytes, payload: bytes) -> _Node:
    if kind in _CONTAINERS:
        return _Node(kind, b"", [_parse_node(*child) for child in _read_boxes(payload)])
    if kind == b"stsd":
        # FullBox header and entry count, then the sample entries.
        return _Node(kind, b"", [_Node(*child) for child in _read_boxes(payload[8:])], prefix=payload[:8])
    return _Node(kind, payload)


def _child(node: _Node, kind: bytes) -> _Node | None:
    return next((child for child in node.children or () if child.kind == kind), None)


def _video_sample_entry(moov: _Node, path: Path) -> list[_Node]:
    """The path moov/.../stsd/<entry> of the first video track, with the entry opened into its child boxes."""
    for trak in (child for child in moov.children if child.kind == b"trak"):
        mdia = _child(trak, b"mdia")
        hdlr = _child(mdia, b"hdlr") if mdia else None
        # hdlr: version/flags (4), pre_defined (4), handler_type (4).
        if hdlr is None or hdlr.payload[8:12] != b"vide":
            continue
        minf = _child(mdia, b"minf")
        stbl = _child(minf, b"stbl") if minf else None
        stsd = _child(stbl, b"stsd") if stbl else None
        if stsd is None or not stsd.children:
            break
        entry = stsd.children[0]
        if entry.children is None:
            if len(entry.payload) < _VISUAL_ENTRY_FIELDS:
                raise StereoInputError(f"'{path}' has a damaged video sample entry.")
            children = [_Node(*child) for child in _read_boxes(entry.payload[_VISUAL_ENTRY_FIELDS:])]
            stsd.children[0] = entry = _Node(entry.kind, b"", children, prefix=entry.payload[:_VISUAL_ENTRY_FIELDS])
        return [moov, trak, mdia, minf, stbl, stsd, entry]
    raise StereoInputError(f"'{path}' has no video track to carry stereo metadata.")


def _replace_spatial_boxes(entry: _Node, metadata: SpatialMetadata) -> None:
    kept = [child for child in entry.children if child.kind not in _SPATIAL_KINDS]
    position = next((i for i, child in enumerate(kept) if child.kind in _TRAILING), len(kept))
    new = [_Node(*_read_boxes(box)[0]) for box in _spatial_boxes(metadata)]
    entry.children = kept[:position] + new + kept[position:]


def _serialize_with_offsets(moov: _Node, moov_offset: int, old_size: int, data_follows: bool) -> bytes:
    """moov's bytes, with chunk offsets behind it moved by its change in size (found by iterating,
    since turning an overflowing stco into co64 changes the size again)."""
    tables = _chunk_tables(moov)
    originals = [(table, _read_offsets(table)) for table in tables]
    delta = 0
    for _ in range(4):
        if data_follows:
            for table, offsets in originals:
                _write_offsets(table, [value + delta if value > moov_offset else value for value in offsets])
        data = moov.serialize()
        if len(data) - old_size == delta or not data_follows:
            return data
        delta = len(data) - old_size
    raise StereoInputError("Could not lay out the MP4 header (chunk offsets did not settle).")


def _chunk_tables(node: _Node) -> list[_Node]:
    found = []
    for child in node.children or ():
        if child.kind in (b"stco", b"co64"):
            found.append(child)
        elif child.kind in _CONTAINERS:
            found += _chunk_tables(child)
    return found


def _read_offsets(table: _Node) -> list[int]:
    count = struct.unpack_from(">I", table.payload, 4)[0]
    width = "I" if table.kind == b"stco" else "Q"
    return list(struct.unpack_from(f">{count}{width}", table.payload, 8))


def _write_offsets(table: _Node, offsets: list[int]) -> None:
    if table.kind == b"stco" and offsets and max(offsets) >= 2**32:
        table.kind = b"co64"
    width = "I" if table.kind == b"stco" else "Q"
    table.payload = table.payload[:8] + struct.pack(f">{len(offsets)}{width}", *offsets)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSampleEntry:
    codec: str
    """The sample entry's type, e.g. 'avc1'."""
    boxes: tuple[str, ...]
    """The types of the boxes inside it, in order."""
    metadata: SpatialMetadata | None
    """What its st3d/sv3d/vexu/hfov say; None without any of them."""


def read_video_sample_entry(path: str | Path) -> VideoSampleEntry:
    """Parse the first video track's sample entry of an MP4 file, and its stereo/spherical boxes."""
    path = Path(path)
    tree = _moov_tree(path, _the_moov(_top_level_boxes(path), path))
    entry = _video_sample_entry(tree, path)[-1]
    boxes = {child.kind: child.payload for child in entry.children}
    return VideoSampleEntry(entry.kind.decode("latin-1"), tuple(child.kind.decode("latin-1") for child in entry.children),
                            _parse_spatial(boxes.get(b"st3d"), boxes.get(b"sv3d"),
                                           _parse_apple(boxes.get(b"vexu"), boxes.get(b"hfov"))))


def read_spatial_metadata(path: str | Path) -> SpatialMetadata | None:
    """The stereo/spherical metadata of an MP4 file's video track (None when it has none)."""
    return read_video_sample_entry(path).metadata


def _parse_spatial(st3d: bytes | None, sv3d: bytes | None,
                   apple: AppleProjectedMedia | None) -> SpatialMetadata | None:
    if st3d is None and sv3d is None and apple is None:
        return None
    mode = "mono" if sv3d is not None else None  # sv3d without st3d: mono, says the RFC
    if st3d is not None:
        code = st3d[4]
        names = {value: name for name, value in STEREO_MODES.items()}
        mode = names.get(code, f"unknown ({code})")
    if sv3d is None:
        return SpatialMetadata(mode, apple=apple)
    parts = dict(_read_boxes(sv3d))
    source = parts.get(b"svhd", b"\0\0\0\0")[4:].split(b"\0")[0].decode("utf-8", "replace")
    projection_parts = dict(_read_boxes(parts.get(b"proj", b"")))
    pose = (0.0, 0.0, 0.0)
    if b"prhd" in projection_parts:
        pose = tuple(value / 65536 for value in struct.unpack_from(">iii", projection_parts[b"prhd"], 4))
    if b"equi" not in projection_parts:
        kinds = ", ".join(kind.decode("latin-1") for kind in projection_parts) or "none"
        return SpatialMetadata(mode, f"other ({kinds})", pose=pose, metadata_source=source, apple=apple)
    bounds = tuple(value / 2**32 for value in struct.unpack_from(">IIII", projection_parts[b"equi"], 4))
    return SpatialMetadata(mode, "equirectangular", bounds=bounds, pose=pose, metadata_source=source, apple=apple)


def _parse_apple(vexu: bytes | None, hfov: bytes | None) -> AppleProjectedMedia | None:
    """vexu's projection, eyes and packing and hfov's angle, named as AppleProjectedMedia names them
    ("unknown (...)" for a code it has no name for); None without vexu."""
    if vexu is None:
        return None
    parts = dict(_read_boxes(vexu))
    projection = _child_code(parts.get(b"proj"), b"prji", PROJECTION_KINDS, "none")
    packing = _child_code(parts.get(b"pack"), b"pkin", VIEW_PACKINGS, "none")
    eyes = dict(_read_boxes(parts.get(b"eyes", b"")))
    views = eyes[b"stri"][4] if b"stri" in eyes else 0
    heroes = {number: name for name, number in HERO_EYES.items()}
    hero = heroes.get(eyes[b"hero"][4], "unknown") if b"hero" in eyes else "none"
    fov = struct.unpack_from(">I", hfov)[0] / 1000 if hfov is not None and len(hfov) >= 4 else None
    return AppleProjectedMedia(packing, projection, eyes_reversed=bool(views & _EYES_REVERSED), hero_eye=hero,
                               horizontal_fov=fov)


def _child_code(container: bytes | None, kind: bytes, names: dict[str, bytes], missing: str) -> str:
    """The name of the four-character code in the FullBox `kind` inside `container`."""
    payload = dict(_read_boxes(container or b"")).get(kind)
    if payload is None or len(payload) < 8:
        return missing
    code = payload[4:8]
    return next((name for name, value in names.items() if value == code), f"unknown ({code.decode('latin-1')})")
