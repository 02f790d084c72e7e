"""The depth stage of a streaming conversion: depth for any range of frames, and the clip's depth statistics.

Two sources, one interface (`DepthFrames`):
- a given depth video, decoded chunk by chunk (its statistics from one extra pass over it);
- DepthCrafter, run in passes whose results are kept in the work store: per-frame CLIP embeddings
  and VAE latents, then each window's latents, then a decoding pass that gathers the clip's
  depth range. Depth itself is never stored: it is decoded again from the kept latents when the
  warp asks for it (the latents take 1/100 of the space), with the same chunking, so the numbers
  are the same as whole-clip estimate_depth's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch

from ..comfort import DEFAULT_OUTLIER_SHARE, MAX_QUANTILE_SAMPLES
from ..convergence import subject_depth
from ..depthcrafter import DepthCrafterSettings, DepthSampler, merge_window, normalize_depth, plan_windows
from ..disparity import DepthRange
from ..errors import StereoInputError
from ..video_diffusion import VideoDiffusionModel, chunks
from ..video_io import FrameReader, VideoInfo
from .store import StageStore, generator_state, restore_generator

log = logging.getLogger(__name__)

# Progress stages of the depth (each reported in frames).
DEPTH_STATISTICS, DEPTH_ENCODE, DEPTH_WINDOWS, DEPTH_DECODE = (
    "depth: statistics", "depth: encode", "depth: windows", "depth: decode")
# Frames per kept piece of the DepthCrafter encode and decode passes (a multiple of the chunk sizes).
PIECE_FRAMES = 64
# Mean spread between a frame's colour channels above which a depth video is a colour picture, not grey
# depth (H.264's chroma subsampling leaves grey depth within a few 8-bit levels).
_COLOUR_SPREAD = 0.04


@dataclass
class DepthStats:
    """Per-frame statistics of the depth the warp sees: extremes, median, the main subject's depth
    (centre-weighted median, for auto-convergence) and the near/far quantiles (for the comfort report)."""

    low: torch.Tensor
    high: torch.Tensor
    median: torch.Tensor
    subject: torch.Tensor
    q_low: torch.Tensor
    q_high: torch.Tensor

    FIELDS = ("low", "high", "median", "subject", "q_low", "q_high")

    @property
    def depth_range(self) -> DepthRange:
        return DepthRange(self.low, self.high)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.FIELDS}

    def map(self, function) -> "DepthStats":
        """The statistics of the depth after an increasing map (all of them commute with one)."""
        return DepthStats(*(function(getattr(self, name).clone()) for name in self.FIELDS))

    @classmethod
    def of_frames(cls, depth: torch.Tensor) -> "DepthStats":
        flat = depth.flatten(1)
        step = max(1, flat.shape[1] // MAX_QUANTILE_SAMPLES)
        shares = torch.tensor([DEFAULT_OUTLIER_SHARE, 1 - DEFAULT_OUTLIER_SHARE])
        # One frame at a time: torch.quantile refuses inputs of more than 16M values.
        quantiles = torch.stack([torch.quantile(frame[::step].float(), shares) for frame in flat])
        return cls(flat.amin(dim=1), flat.amax(dim=1), flat.median(dim=1).values, subject_depth(depth),
                   quantiles[:, 0], quantiles[:, 1])

    @classmethod
    def join(cls, parts: list["DepthStats"]) -> "DepthStats":
        return cls(*(torch.cat([getattr(part, name) for part in parts]) for name in cls.FIELDS))


class DepthFrames:
    """Depth for frames [start, stop) of a run, in order, at the size it comes in (the warp resizes)."""

    frames: int
    stats: DepthStats

    def read(self, start: int, stop: int) -> torch.Tensor:
        raise NotImplementedError

    def stats_index(self, frames: slice) -> slice:
        """Where the run's frames `frames` are in `stats` and the per-frame convergence (elsewhere when the
        run is a part of a longer scene whose statistics, normalisation and screen plane are the scene's)."""
        return frames

    def close(self) -> None:
        """Release what reading holds (a decoder); nothing by default."""


def check_grey(reader: FrameReader) -> None:
    """Refuse a colour depth video (a colormap): its luma is not its depth."""
    if reader.colour > _COLOUR_SPREAD:
        raise StereoInputError(
            f"The depth video '{reader.info.path}' is in colour (e.g. a colormap such as inferno), not grey depth: its "
            f"brightness is not its depth. Use a greyscale depth video (white = near), e.g. one saved with "
            f"--save-depth or Depth Visualize set to 'gray'.")


class DepthVideoFrames(DepthFrames):
    """Frames of a given depth video, aligned by index with the run's frames."""

    def __init__(self, info: VideoInfo, start: int, stop: int, store: StageStore,
                 progress: Callable[[int, int], None] | None = None, chunk: int = 16):
        self.info, self.start, self.frames = info, start, stop - start
        self._reader = FrameReader(info, grey=True)
        saved = store.load_tensors("stats.safetensors")
        if saved is not None:
            self.stats = DepthStats(**saved[0])
            return
        parts = []
        for part in chunks(self.frames, chunk):
            parts.append(DepthStats.of_frames(self.read(part.start, part.stop)))
            if progress:
                progress(part.stop, self.frames)
        self.stats = DepthStats.join(parts)
        store.save_tensors("stats.safetensors", self.stats.tensors())

    def read(self, start: int, stop: int) -> torch.Tensor:
        depth = self._reader.read(self.start + start, self.start + stop).float().div_(255.0)
        check_grey(self._reader)
        return depth

    def close(self) -> None:
        self._reader.close()


class DepthCrafterFrames(DepthFrames):
    """DepthCrafter depth of a run's frames, computed in passes kept in the stage store."""

    def __init__(self, model: Callable[[], VideoDiffusionModel], settings: DepthCrafterSettings, video: FrameReader,
                 start: int, stop: int, store: StageStore, seed: int, progress, log_resume: Callable[[str], None]):
        """`model` gives the model when called: only a pass that really runs (or a read that decodes) loads it."""
        self._model, self._sampler = model, None
        self.settings, self.store, self.video, self.start = settings, store, video, start
        self.frames = stop - start
        self.generator = torch.Generator().manual_seed(int(seed))
        # The sampler's chunks and windows, known without the model (finished passes are recognised by them).
        self.windows = plan_windows(self.frames, settings.window, settings.overlap)
        self.encode_slices = list(chunks(self.frames, settings.encode_chunk))
        self.decode_slices = list(chunks(self.frames, settings.decode_chunk))
        self._progress, self._log_resume = progress, log_resume
        self._decoded: tuple[int, torch.Tensor] | None = None  # the last decode chunk: first frame, depth
        self._window_cache: tuple[int, torch.Tensor] | None = None
        with torch.no_grad():
            self._encode_pass()
            self._window_pass()
            self.stats, (self.low, self.high) = self._statistics_pass()

    @property
    def sampler(self) -> DepthSampler:
        """The model's steps, made (and the model loaded) on first use."""
        if self._sampler is None:
            info = self.video.info
            self._sampler = DepthSampler(self._model(), self.settings, self.frames, info.height, info.width,
                                         self.generator)
        return self._sampler

    @property
    def model(self) -> VideoDiffusionModel:
        return self.sampler.model

    # --- pass 1: CLIP embeddings and VAE latents of every frame ---------------------------------------

    def _pieces(self, size: int, slices: list[slice]) -> list[tuple[slice, list[slice]]]:
        """The kept pieces of a pass whose chunks (`slices`) have `size` frames: about PIECE_FRAMES frames,
        a whole number of chunks each, with the chunks inside them."""
        return [(piece, [part for part in slices if piece.start <= part.start < piece.stop])
                for piece in chunks(self.frames, size * max(1, PIECE_FRAMES // size))]

    def _encode_pieces(self) -> list[tuple[slice, list[slice]]]:
        return self._pieces(self.settings.encode_chunk, self.encode_slices)

    def _encode_pass(self) -> None:
        pieces_and_parts = self._encode_pieces()
        pieces = [piece for piece, _ in pieces_and_parts]
        done = 0
        while done < len(pieces) and self.store.has(f"encode-{pieces[done].start:07d}.safetensors"):
            done += 1
        if done == len(pieces) and self.store.has("noise.safetensors"):
            return
        if done:
            self._log_resume(f"depth: encoding resumes at frame {self.start + pieces[done - 1].stop}")
            last = self.store.require_tensors(f"encode-{pieces[done - 1].start:07d}.safetensors")[0]
            restore_generator(self.generator, last)
        sampler, placement = self.sampler, self.model.placement
        with self._progress(DEPTH_ENCODE, self.frames) as bar:
            bar(pieces[done - 1].stop if done else 0, self.frames)
            for piece, inside in pieces_and_parts[done:]:
                video = self.video.read(self.start + piece.start, self.start + piece.stop).float().div_(255.0)
                parts = [slice(p.start - piece.start, p.stop - piece.start) for p in inside]
                with placement.use(self.model.image_encoder):
                    embeddings = torch.cat([sampler.embed(video[part]) for part in parts])
                with placement.use(self.model.vae):
                    latents = torch.cat([sampler.encode(video[part]) for part in parts])
                self.store.save_tensors(f"encode-{piece.start:07d}.safetensors", {
                    "embeddings": embeddings, "latents": latents, **generator_state(self.generator)})
                bar(piece.stop, self.frames)
        self.store.save_tensors("noise.safetensors", {"noise": sampler.initial_noise()})

    def _encoded(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings and latents of frames [start, stop) from the kept encode pieces."""
        embeddings, latents = [], []
        for piece, _ in self._encode_pieces():
            if piece.stop <= start or piece.start >= stop:
                continue
            tensors, _ = self.store.require_tensors(f"encode-{piece.start:07d}.safetensors")
            inside = slice(max(start, piece.start) - piece.start, min(stop, piece.stop) - piece.start)
            embeddings.append(tensors["embeddings"][inside])
            latents.append(tensors["latents"][inside])
        return torch.cat(embeddings), torch.cat(latents)

    # --- pass 2: the windows, in order, each continuing from the previous one ---------------------

    def _window_name(self, index: int) -> str:
        return f"window-{index:06d}.safetensors"

    def _window_pass(self) -> None:
        windows = self.windows
        first = 0
        while first < len(windows) and self.store.has(self._window_name(first)):
            first += 1
        if first == len(windows):
            return
        if first:
            self._log_resume(f"depth: windows resume at window {first + 1} of {len(windows)} "
                             f"(frame {self.start + windows[first].start})")
        sampler = self.sampler
        noise = self.store.require_tensors("noise.safetensors")[0]["noise"]
        previous = self.store.require_tensors(self._window_name(first - 1))[0]["latents"] if first else None
        frames_done = windows[first - 1].end if first else 0
        with self._progress(DEPTH_WINDOWS, self.frames) as bar, self.model.placement.use(self.model.unet) as unet:
            bar(frames_done, self.frames)
            for index in range(first, len(windows)):
                window = windows[index]
                embeddings, latents = self._encoded(window.start, window.end)
                shared = None
                if window.blend:
                    # The previous window's kept latents cover this window's shared frames.
                    before = windows[index - 1]
                    shared = previous[window.start - before.start:window.start - before.start + window.blend]
                sample = sampler.denoise(unet, window, sampler.window_noise(noise, index), latents, embeddings, shared)
                result = torch.empty(window.frames, *sampler.latent_shape)
                if window.blend:
                    result[:window.blend] = shared
                merge_window(result, window, sample, offset=window.start)
                self.store.save_tensors(self._window_name(index), {"latents": result})
                previous = result
                bar(window.end, self.frames)

    def _final_latents(self, start: int, stop: int) -> torch.Tensor:
        """The clip's final latents of frames [start, stop): each frame from the last window holding it."""
        windows = self.windows
        stride = self.settings.window - self.settings.overlap
        out = torch.empty(stop - start, *self.sampler.latent_shape)
        for frame in range(start, stop):
            index = min(frame // stride, len(windows) - 1)  # windows start every `stride` frames
            if self._window_cache is None or self._window_cache[0] != index:
                self._window_cache = (index, self.store.require_tensors(self._window_name(index))[0]["latents"])
            out[frame - start] = self._window_cache[1][frame - windows[index].start]
        return out

    # --- pass 3: decode, gathering the depth range ------------------------------------------------

    def _decode_chunk(self, part: slice) -> torch.Tensor:
        with self.model.placement.use(self.model.vae):
            return self.sampler.decode(self._final_latents(part.start, part.stop))

    def _statistics_pass(self) -> tuple[DepthStats, tuple[float, float]]:
        """Per-frame statistics of the raw decoded depth, kept per piece; the clip's extremes from them."""
        parts, resumed = [], False
        with self._progress(DEPTH_DECODE, self.frames) as bar:
            for piece, inside in self._pieces(self.settings.decode_chunk, self.decode_slices):
                name = f"stats-{piece.start:07d}.safetensors"
                saved = self.store.load_tensors(name)
                if saved is None:
                    if parts and not resumed:
                        self._log_resume(f"depth: decoding resumes at frame {self.start + piece.start}")
                    resumed = True
                    depth = torch.cat([self._decode_chunk(part) for part in inside])
                    parts.append(DepthStats.of_frames(depth))
                    self.store.save_tensors(name, parts[-1].tensors())
                else:
                    parts.append(DepthStats(**saved[0]))
                bar(piece.stop, self.frames)
        raw = DepthStats.join(parts)
        low, high = float(raw.low.min()), float(raw.high.max())
        # Normalising is increasing, so the normalised frames' statistics are the raw ones normalised.
        return raw.map(lambda values: normalize_depth(values, low, high)), (low, high)

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Normalised depth (1 = nearest) of frames [start, stop), decoded again from the kept latents."""
        size = self.settings.decode_chunk
        out = []
        with torch.no_grad():
            for part in self.decode_slices[start // size:(stop - 1) // size + 1]:
                if self._decoded is None or self._decoded[0] != part.start:
                    self._decoded = (part.start, self._decode_chunk(part))
                depth = self._decoded[1]
                out.append(depth[max(start, part.start) - part.start:min(stop, part.stop) - part.start])
        return normalize_depth(torch.cat(out), self.low, self.high)




# --- depth models that stream: frames in, raw depth out, a carry state between feeds ----------------------

DEPTH_ESTIMATE = "depth: estimate"


class DepthStream:
    """One clip's run of a streaming depth model (what a depth model's library module gives the engine).

    Frames go in in order, a piece at a time; raw depth comes out in order (larger = nearer, any scale:
    the engine min-max normalises it over the clip or scene), possibly later than its frames went in (a
    windowed model holds back the frames its next window still blends). Between feeds everything the
    run carries is `state()`: tensors the engine keeps with each piece, so a killed run continues from
    `restore(state)` to the same numbers."""

    def feed(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [n, H, W, 3] (0..1, the clip's next ones) in; the raw depth [m, h, w] of the next m frames
        that are finished out (m may be 0)."""
        raise NotImplementedError

    def finish(self) -> torch.Tensor:
        """The raw depth of the frames still held back, at the clip's end."""
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


class StreamedDepthFrames(DepthFrames):
    """A streaming depth model's depth of a run's frames, kept in the stage store as raw float32 depth, one
    file per piece of PIECE_FRAMES input frames; later stages read the depth back from the store (normalised
    with the run's extremes), in a resumed run as in an uninterrupted one. The stream's state after a piece
    (tens of MB for Video Depth Anything at 1080p) is kept only for the last finished piece: it is written
    before the piece's depth and the one before it removed after, so a resume always finds the state it
    continues from."""

    def __init__(self, stream: Callable[[], DepthStream], video: FrameReader, start: int, stop: int,
                 store: StageStore, progress, log_resume: Callable[[str], None]):
        """`stream` starts the model's run when called: only a piece that is really computed loads the model."""
        self.store, self.start, self.frames = store, start, stop - start
        self.pieces = list(chunks(self.frames, PIECE_FRAMES))
        self._cache: tuple[int, torch.Tensor] | None = None
        with torch.no_grad():
            self._estimate(stream, video, progress, log_resume)
        records = [self.store.require_tensors(self._name(piece))[1] for piece in self.pieces]
        self._spans = [(record["first"], record["first"] + record["count"]) for record in records]
        raw = DepthStats.join([DepthStats(**{name: torch.tensor(record[name]) for name in DepthStats.FIELDS})
                               for record in records if record["count"]])
        if raw.low.shape[0] != self.frames:
            raise StereoInputError(f"The depth model gave {raw.low.shape[0]} depth frames for {self.frames} frames.")
        self.low, self.high = float(raw.low.min()), float(raw.high.max())
        self.stats = raw.map(lambda values: normalize_depth(values, self.low, self.high))

    def _name(self, piece: slice) -> str:
        return f"raw-{piece.start:07d}.safetensors"

    def _state_name(self, piece: slice) -> str:
        return f"state-{piece.start:07d}.safetensors"

    def _estimate(self, stream_of, video: FrameReader, progress, log_resume) -> None:
        done = 0
        while done < len(self.pieces) and self.store.has(self._name(self.pieces[done])):
            done += 1
        if done == len(self.pieces):
            return
        stream = stream_of()
        first = 0
        if done:
            log_resume(f"depth: estimation resumes at frame {self.start + self.pieces[done].start}")
            record = self.store.require_tensors(self._name(self.pieces[done - 1]))[1]
            stream.restore(self.store.require_tensors(self._state_name(self.pieces[done - 1]))[0])
            first = record["first"] + record["count"]
        with progress(DEPTH_ESTIMATE, self.frames) as bar:
            bar(self.pieces[done].start, self.frames)
            for index in range(done, len(self.pieces)):
                piece = self.pieces[index]
                frames = video.read(self.start + piece.start, self.start + piece.stop).float().div_(255.0)
                depth = stream.feed(frames)
                if index == len(self.pieces) - 1:
                    depth = torch.cat([depth, stream.finish()])
                depth = depth.float()
                stats = DepthStats.of_frames(depth).tensors() if depth.shape[0] else {}
                # The state after the piece first, then the piece's depth and statistics (what marks it done),
                # then the state before it goes: a resume always finds the state after its last done piece.
                self.store.save_tensors(self._state_name(piece), stream.state())
                self.store.save_tensors(self._name(piece), {"depth": depth}, {
                    "first": first, "count": depth.shape[0], **{key: value.tolist() for key, value in stats.items()}})
                if index:
                    self.store.remove(self._state_name(self.pieces[index - 1]))
                first += depth.shape[0]
                bar(piece.stop, self.frames)
        self.store.remove(self._state_name(self.pieces[-1]))  # nothing continues from the last piece

    def _piece_depth(self, index: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != index:
            self._cache = (index, self.store.require_tensors(self._name(self.pieces[index]))[0]["depth"])
        return self._cache[1]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Normalised depth (1 = nearest) of frames [start, stop), from the kept pieces."""
        out = [self._piece_depth(index)[max(start, first) - first:min(stop, last) - first]
               for index, (first, last) in enumerate(self._spans) if first < stop and last > start]
        return normalize_depth(torch.cat(out).clone(), self.low, self.high)
