"""Spherical Video V2 boxes (st3d, sv3d/equi) and Apple's Projected Media Profile boxes (vexu, hfov)
written into real H.264 MP4/MOV files and read back.

Files are written by PyAV; after tagging, every frame must still decode to the same pixels, our
reader must find the boxes in the video sample entry, a byte-level parser written here (not the
module's own reader) must find every field of Apple's boxes, and FFmpeg itself (through PyAV) must
report the stereo and spherical side data it parsed from them.
"""

import ctypes
import dataclasses
import struct

import av
import numpy as np
import pytest

from stereo_core.errors import StereoInputError
from stereo_core.layouts import VirtualScreen
from stereo_core.spatial_media import (
    FLAT_FIELD_OF_VIEW,
    VR180,
    AppleProjectedMedia,
    SpatialMetadata,
    _parse_container,
    _serialize_with_offsets,
    filename_tag,
    metadata_for_layout,
    read_spatial_metadata,
    read_video_sample_entry,
    write_spatial_metadata,
)

FRAMES = 5


def write_mp4(path, faststart=False, audio=True, fragmented=False, video=True, container="mp4"):
    """A few frames of H.264 (each frame a different picture) plus a short AAC track."""
    flags = "frag_keyframe+empty_moov" if fragmented else "faststart" if faststart else None
    with av.open(str(path), "w", format=container, options={"movflags": flags} if flags else {}) as out:
        stream = out.add_stream("libx264", rate=24) if video else None
        if stream is not None:
            stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        sound = out.add_stream("aac", rate=48000) if audio else None
        for i in range(FRAMES if video else 0):
            picture = np.zeros((32, 64, 3), np.uint8)
            picture[:, i * 10:i * 10 + 12] = (250, 40 * i, 90)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        if stream is not None:
            out.mux(stream.encode(None))
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
            samples.sample_rate = 48000
            out.mux(sound.encode(samples))
            out.mux(sound.encode(None))
    return path


def side_data(frame):
    """A frame's side data by type name. PyAV 18 iterates its container as a mapping of types (older versions
    yield the entries) and dropped the buffer protocol; the raw pointer and size read the same on both."""
    entries = [item if hasattr(item, "buffer_ptr") else frame.side_data[item] for item in frame.side_data]
    return {data.type.name: ctypes.string_at(data.buffer_ptr, data.buffer_size) for data in entries}


def decode(path):
    """Every video frame's pixels, FFmpeg's stereo/spherical side data, and the audio packet sizes."""
    with av.open(str(path)) as container:
        frames, side = [], {}
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            side.update(side_data(frame))
        audio = []
        if container.streams.audio:
            container.seek(0)
            audio = [packet.size for packet in container.demux(audio=0) if packet.size]
    return np.stack(frames), side, audio


def ffmpeg_stereo(side):
    """(AVStereo3D.type, .flags) as FFmpeg parsed them: type 1 = side by side, 2 = top-bottom; flag 1 = inverted."""
    return struct.unpack_from("<ii", side["STEREO3D"])


def ffmpeg_stereo_views(side):
    """AVStereo3D past type and flags (FFmpeg 7.1+): view (0 = packed, both eyes), primary_eye (1 = left),
    baseline, horizontal_disparity_adjustment and horizontal_field_of_view as (numerator, denominator)."""
    view, primary, baseline, adjust_num, adjust_den, fov_num, fov_den = struct.unpack_from("<iiIiiii",
                                                                                         side["STEREO3D"], 8)
    return view, primary, baseline, (adjust_num, adjust_den), (fov_num, fov_den)


def ffmpeg_spherical(side):
    """AVSphericalMapping: projection, yaw, pitch, roll, bound_left, bound_top, bound_right, bound_bottom."""
    return struct.unpack_from("<iiiiIIII", side["SPHERICAL"])


# AVSphericalProjection values (libavutil/spherical.h).
FFMPEG_EQUIRECTANGULAR_TILE, FFMPEG_HALF_EQUIRECTANGULAR, FFMPEG_RECTILINEAR = 2, 3, 4


def boxes_in(data):
    """{type: payload} of the boxes filling `data` (32-bit sizes; every size must add up exactly)."""
    found, offset = {}, 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        assert 8 <= size <= len(data) - offset, f"box {kind} at {offset} has size {size} in {len(data)} bytes"
        assert kind not in found, f"two {kind} boxes"
        found[kind] = data[offset + 8:offset + size]
        offset += size
    return found


def raw_video_entry(path):
    """(type, {child type: payload}, [child types in order]) of the first video track's sample entry, parsed
    here from the file's bytes alone."""
    data = path.read_bytes()
    moov = boxes_in(data)[b"moov"]
    offset = 0
    while offset < len(moov):
        size, kind = struct.unpack_from(">I4s", moov, offset)
        trak, offset = moov[offset + 8:offset + size], offset + size
        if kind != b"trak":
            continue
        mdia = boxes_in(trak)[b"mdia"]
        if boxes_in(mdia)[b"hdlr"][8:12] != b"vide":
            continue
        stsd = boxes_in(boxes_in(boxes_in(mdia)[b"minf"])[b"stbl"])[b"stsd"]
        size, kind = struct.unpack_from(">I4s", stsd, 8)  # after version/flags and entry count
        children = stsd[8 + 8 + 78:8 + size]  # after the entry's header and its fixed fields
        order, at = [], 0
        while at < len(children):
            order.append(children[at + 4:at + 8].decode())
            at += struct.unpack_from(">I", children, at)[0]
        return kind.decode(), boxes_in(children), order
    raise AssertionError("no video track")


def full_box(payload):
    """(version, flags, rest) of a FullBox payload."""
    header = struct.unpack_from(">I", payload)[0]
    return header >> 24, header & 0xFFFFFF, payload[4:]


def apple_fields(children):
    """Every field of vexu (and hfov), read from the bytes: projection kind, stri flags, hero eye, packing
    kind, hfov in thousandths of a degree (None without hfov), and the other boxes vexu/eyes hold."""
    vexu = boxes_in(children[b"vexu"])
    assert list(vexu) == [b"proj", b"eyes", b"pack"]  # FFmpeg reads the packing only when pack follows eyes
    prji = boxes_in(vexu[b"proj"])
    eyes = boxes_in(vexu[b"eyes"])
    pkin = boxes_in(vexu[b"pack"])
    assert list(prji) == [b"prji"] and list(pkin) == [b"pkin"] and list(eyes) == [b"stri", b"hero"]
    fields = {}
    for name, payload, width in (("projection", prji[b"prji"], 4), ("stri", eyes[b"stri"], 1),
                                 ("hero", eyes[b"hero"], 1), ("packing", pkin[b"pkin"], 4)):
        version, flags, rest = full_box(payload)
        assert (version, flags, len(rest)) == (0, 0, width), name
        fields[name] = rest if width == 4 else rest[0]
    hfov = children.get(b"hfov")
    fields["hfov"] = None if hfov is None else struct.unpack(">I", hfov)[0]  # a plain Box of one uint32
    return fields


# What every layout must say to Apple: (prji, pkin, stri flags, hfov), stri bit 0 left eye, bit 1 right eye,
# bit 3 eye views reversed; hero eye 1 (left: the source's own picture) throughout.
APPLE_FIELDS = {
    ("sbs", False): (b"rect", b"side", 0b0011, 70_000),
    ("half-sbs", False): (b"rect", b"side", 0b0011, 70_000),
    ("tb", False): (b"rect", b"over", 0b0011, 70_000),
    ("half-tb", False): (b"rect", b"over", 0b0011, 70_000),
    ("vr180", False): (b"hequ", b"side", 0b0011, None),
    ("sbs", True): (b"rect", b"side", 0b1011, 70_000),
    ("half-sbs", True): (b"rect", b"side", 0b1011, 70_000),
    ("tb", True): (b"rect", b"over", 0b1011, 70_000),
    ("half-tb", True): (b"rect", b"over", 0b1011, 70_000),
}


@pytest.mark.parametrize("faststart", [False, True], ids=["moov-last", "moov-first"])
@pytest.mark.parametrize("layout", ["sbs", "half-sbs", "tb", "half-tb", "vr180"])
def test_tagged_files_decode_unchanged_and_carry_the_boxes(tmp_path, layout, faststart):
    source = write_mp4(tmp_path / "plain.mp4", faststart=faststart)
    before, side_before, audio_before = decode(source)
    assert "STEREO3D" not in side_before
    tagged = write_spatial_metadata(source, metadata_for_layout(layout), tmp_path / f"out{filename_tag(layout)}.mp4")

    after, side, audio = decode(tagged)
    assert after.shape[0] == FRAMES and np.array_equal(before, after)  # every frame, the same pixels
    assert audio == audio_before  # the other track's chunk offsets were moved too
    entry = read_video_sample_entry(tagged)
    spherical = layout == "vr180"
    # The codec's box first, Google's boxes, then Apple's, the optional bitrate box still last.
    assert entry.codec == "avc1"
    assert entry.boxes == (("avcC", "st3d", "sv3d", "vexu", "btrt") if spherical
                           else ("avcC", "st3d", "vexu", "hfov", "btrt"))
    assert raw_video_entry(tagged)[2] == list(entry.boxes)
    expected_mode = "top-bottom" if layout.endswith("tb") else "left-right"
    assert entry.metadata.stereo_mode == expected_mode
    # FFmpeg reads st3d, then vexu: the packing and eyes from vexu, the projection from vexu's prji.
    assert ffmpeg_stereo(side) == ((2 if expected_mode == "top-bottom" else 1), 0)
    view, primary, baseline, adjustment, fov = ffmpeg_stereo_views(side)
    assert (view, primary, baseline, adjustment[0]) == (0, 1, 0, 0)  # both eyes packed, left the primary
    if spherical:
        assert entry.metadata == VR180
        assert dataclasses.replace(entry.metadata, apple=None) == SpatialMetadata(
            "left-right", "equirectangular", (0.0, 0.0, 0.25, 0.25))
        assert ffmpeg_spherical(side)[0] == FFMPEG_HALF_EQUIRECTANGULAR and fov[0] == 0
    else:
        assert entry.metadata.projection is None
        assert ffmpeg_spherical(side)[0] == FFMPEG_RECTILINEAR
        assert fov == (70_000, 1000)  # the flat picture spans 70 degrees


@pytest.mark.parametrize("swap", [False, True], ids=["left-first", "right-first"])
@pytest.mark.parametrize("layout", ["sbs", "half-sbs", "tb", "half-tb", "vr180"])
def test_apple_boxes_say_the_layout_field_by_field(tmp_path, layout, swap):
    metadata = metadata_for_layout(layout, swap)
    if layout == "vr180" and swap:
        assert metadata is None  # a swapped VR180 frame is refused before conversion
        return
    tagged = write_spatial_metadata(write_mp4(tmp_path / "plain.mp4", audio=False), metadata, tmp_path / "out.mp4")
    codec, children, _ = raw_video_entry(tagged)
    fields = apple_fields(children)
    projection, packing, stri, hfov = APPLE_FIELDS[layout, swap]
    assert (codec, fields) == ("avc1", {"projection": projection, "stri": stri, "hero": 1, "packing": packing,
                                        "hfov": hfov})
    # The module's own reader names the same values back.
    assert read_spatial_metadata(tagged) == metadata
    assert metadata.apple.eyes_reversed == swap and metadata.apple.hero_eye == "left"


def test_flat_field_of_view_is_the_vr180_screen():
    """A flat layout tells Vision Pro the picture is as wide as our VR180 layout's default virtual screen,
    and a caller's own angle goes into hfov to the thousandth of a degree."""
    assert FLAT_FIELD_OF_VIEW == VirtualScreen().fov == 70.0
    assert metadata_for_layout("sbs").apple.horizontal_fov == FLAT_FIELD_OF_VIEW
    assert metadata_for_layout("tb", field_of_view=63.4567).apple.horizontal_fov == 63.457


def test_google_boxes_alone_read_as_before(tmp_path):
    """Without Apple's boxes FFmpeg still takes the layout from st3d and the 180-degree crop from sv3d."""
    source = write_mp4(tmp_path / "plain.mp4", audio=False)
    tagged = write_spatial_metadata(source, dataclasses.replace(VR180, apple=None), tmp_path / "google.mp4")
    _, side, _ = decode(tagged)
    assert read_video_sample_entry(tagged).boxes == ("avcC", "st3d", "sv3d", "btrt")
    assert ffmpeg_stereo(side) == (1, 0)
    projection, yaw, pitch, roll, left, top, right, bottom = ffmpeg_spherical(side)
    assert (projection, yaw, pitch, roll, top, bottom) == (FFMPEG_EQUIRECTANGULAR_TILE, 0, 0, 0, 0, 0)
    assert left == right == 2**30  # a quarter of the 360-degree width cropped on each side
    flat = write_spatial_metadata(source, dataclasses.replace(metadata_for_layout("tb"), apple=None),
                                  tmp_path / "flat.mp4")
    _, side, _ = decode(flat)
    assert ffmpeg_stereo(side) == (2, 0) and "SPHERICAL" not in side


def test_mov_files_carry_the_boxes_too(tmp_path):
    source = write_mp4(tmp_path / "plain.mov", container="mov")
    before, _, audio_before = decode(source)
    tagged = write_spatial_metadata(source, metadata_for_layout("half-sbs"), tmp_path / "out_HSBS.mov")
    after, side, audio = decode(tagged)
    assert np.array_equal(before, after) and audio == audio_before
    codec, children, order = raw_video_entry(tagged)
    assert (codec, order) == ("avc1", ["avcC", "st3d", "vexu", "hfov"])  # QuickTime's muxer writes no btrt
    assert apple_fields(children) == {"projection": b"rect", "stri": 0b0011, "hero": 1, "packing": b"side",
                                      "hfov": 70_000}
    assert ffmpeg_stereo(side) == (1, 0) and ffmpeg_stereo_views(side)[4] == (70_000, 1000)


def test_tagging_in_place_twice_equals_tagging_once(tmp_path):
    once = write_mp4(tmp_path / "once.mp4", faststart=True)
    twice = write_mp4(tmp_path / "twice.mp4", faststart=True)
    write_spatial_metadata(once, VR180)
    write_spatial_metadata(twice, metadata_for_layout("tb"))
    write_spatial_metadata(twice, VR180)  # replaces the earlier boxes instead of adding more
    assert once.read_bytes() == twice.read_bytes()
    assert read_spatial_metadata(once) == VR180
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_swapped_eyes_are_right_left_and_reversed(tmp_path):
    source = write_mp4(tmp_path / "cross.mp4", audio=False)
    write_spatial_metadata(source, metadata_for_layout("sbs", swap=True))
    assert read_spatial_metadata(source).stereo_mode == "right-left"  # st3d mode 4 (FFmpeg 8 does not read it)
    frames, side, _ = decode(source)
    assert np.array_equal(frames, decode(write_mp4(tmp_path / "plain.mp4", audio=False))[0])
    assert ffmpeg_stereo(side) == (1, 1)  # from vexu: side by side, inverted (right eye first)
    # st3d has no value for a bottom-top frame: Apple's boxes alone describe it.
    over = write_spatial_metadata(write_mp4(tmp_path / "over.mp4", audio=False), metadata_for_layout("tb", True),
                                  tmp_path / "over_BT.mp4")
    assert read_video_sample_entry(over).boxes == ("avcC", "vexu", "hfov", "btrt")
    assert read_spatial_metadata(over).stereo_mode is None
    assert ffmpeg_stereo(decode(over)[1]) == (2, 1)
    assert metadata_for_layout("vr180", swap=True) is None and metadata_for_layout("anaglyph") is None
    assert [filename_tag(layout) for layout in ("sbs", "half-sbs", "tb", "half-tb", "vr180")] == [
        "_LR", "_HSBS", "_TB", "_HOU", "_180_LR"]
    assert filename_tag("sbs", swap=True) == "_RL" and filename_tag("anaglyph") == ""


def test_chunk_offsets_past_4_gib_become_64_bit(tmp_path):
    source = write_mp4(tmp_path / "big.mp4", faststart=True, audio=False)
    data = source.read_bytes()
    moov_at = data.index(b"moov") - 4
    size = struct.unpack_from(">I", data, moov_at)[0]
    tree = _parse_container(data[moov_at:moov_at + size])
    node = tree
    for kind in (b"trak", b"mdia", b"minf", b"stbl", b"stco"):
        node = next(child for child in node.children if child.kind == kind)
    table = node
    count = struct.unpack_from(">I", table.payload, 4)[0]
    table.payload = table.payload[:8] + struct.pack(f">{count}I", *[2**32 - 2] * count)  # pretend a 4 GiB file
    grown_from = size - 8  # as if tagging had made moov 8 bytes longer: the data moves past 4 GiB
    moov = _serialize_with_offsets(tree, moov_at, grown_from, data_follows=True)
    assert b"co64" in moov and b"stco" not in moov
    delta = len(moov) - grown_from
    assert delta == 8 + 4 * count  # the table itself grew by 4 bytes per chunk
    offsets = struct.unpack_from(f">{count}Q", moov, moov.index(b"co64") + 12)
    assert offsets == (2**32 - 2 + delta,) * count


def test_files_that_cannot_be_tagged_are_explained(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x10\x00junk" + bytes(64))  # a box longer than the file
    with pytest.raises(StereoInputError, match="not an MP4 file this tool can read"):
        write_spatial_metadata(junk, VR180)
    with pytest.raises(StereoInputError, match="no video track"):
        write_spatial_metadata(write_mp4(tmp_path / "sound.mp4", video=False), VR180)
    with pytest.raises(StereoInputError, match="fragmented MP4"):
        write_spatial_metadata(write_mp4(tmp_path / "frag.mp4", fragmented=True, audio=False), VR180)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(write_mp4(tmp_path / "whole.mp4").read_bytes()[:-100])
    with pytest.raises(StereoInputError):
        write_spatial_metadata(truncated, VR180, tmp_path / "never.mp4")
    assert not (tmp_path / "never.mp4").exists() and not list(tmp_path.glob(".*"))
    with pytest.raises(StereoInputError, match="stereo mode must be one of"):
        write_spatial_metadata(truncated, SpatialMetadata("diagonal"))
    with pytest.raises(StereoInputError, match="says nothing"):
        write_spatial_metadata(truncated, SpatialMetadata(None))
    with pytest.raises(StereoInputError, match="view packing must be one of"):
        write_spatial_metadata(truncated, SpatialMetadata(apple=AppleProjectedMedia("diagonal")))
    with pytest.raises(StereoInputError, match="projection kind must be one of"):
        write_spatial_metadata(truncated, SpatialMetadata(apple=AppleProjectedMedia(projection="cube")))
    with pytest.raises(StereoInputError, match="field of view"):
        write_spatial_metadata(truncated, SpatialMetadata(apple=AppleProjectedMedia(horizontal_fov=0)))
