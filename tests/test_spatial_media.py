"""Spherical Video V2 boxes (st3d, sv3d/equi) written into real H.264 MP4 files and read back.

Files are written by PyAV; after tagging, every frame must still decode to the same pixels, our
reader must find the boxes in the video sample entry, and FFmpeg itself (through PyAV) must
report the stereo and spherical side data it parsed from them.
"""

import ctypes
import struct

import av
import numpy as np
import pytest

from stereo_core.errors import StereoInputError
from stereo_core.spatial_media import (
    VR180,
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


def write_mp4(path, faststart=False, audio=True, fragmented=False, video=True):
    """A few frames of H.264 (each frame a different picture) plus a short AAC track."""
    flags = "frag_keyframe+empty_moov" if fragmented else "faststart" if faststart else None
    with av.open(str(path), "w", format="mp4", options={"movflags": flags} if flags else {}) as out:
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


def ffmpeg_spherical(side):
    """AVSphericalMapping: projection, yaw, pitch, roll, bound_left, bound_top, bound_right, bound_bottom."""
    return struct.unpack_from("<iiiiIIII", side["SPHERICAL"])


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
    # The codec's box first, our boxes next, the optional bitrate box still last.
    assert entry.codec == "avc1"
    assert entry.boxes == (("avcC", "st3d", "sv3d", "btrt") if spherical else ("avcC", "st3d", "btrt"))
    expected_mode = "top-bottom" if layout.endswith("tb") else "left-right"
    assert entry.metadata.stereo_mode == expected_mode
    assert ffmpeg_stereo(side) == ((2 if expected_mode == "top-bottom" else 1), 0)
    if spherical:
        assert entry.metadata == SpatialMetadata("left-right", "equirectangular", (0.0, 0.0, 0.25, 0.25))
        projection, yaw, pitch, roll, left, top, right, bottom = ffmpeg_spherical(side)
        assert (yaw, pitch, roll, top, bottom) == (0, 0, 0, 0, 0)
        assert left == right == 2**30  # a quarter of the 360-degree width cropped on each side
    else:
        assert entry.metadata.projection is None and "SPHERICAL" not in side


def test_tagging_in_place_twice_equals_tagging_once(tmp_path):
    once = write_mp4(tmp_path / "once.mp4", faststart=True)
    twice = write_mp4(tmp_path / "twice.mp4", faststart=True)
    write_spatial_metadata(once, VR180)
    write_spatial_metadata(twice, metadata_for_layout("tb"))
    write_spatial_metadata(twice, VR180)  # replaces the earlier boxes instead of adding more
    assert once.read_bytes() == twice.read_bytes()
    assert read_spatial_metadata(once) == VR180
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_swapped_eyes_are_right_left_or_untagged(tmp_path):
    source = write_mp4(tmp_path / "cross.mp4", audio=False)
    write_spatial_metadata(source, metadata_for_layout("sbs", swap=True))
    assert read_spatial_metadata(source).stereo_mode == "right-left"  # st3d mode 4 (FFmpeg 8 does not read it)
    assert np.array_equal(decode(source)[0], decode(write_mp4(tmp_path / "plain.mp4", audio=False))[0])
    assert metadata_for_layout("tb", swap=True) is None and metadata_for_layout("vr180", swap=True) is None
    assert metadata_for_layout("anaglyph") is None
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
