"""The UNet work a 1080p conversion really does, priced at the real model's size.

The real command line runs on a 12-frame 1920x1080 clip with the tiny random-weight models; every
UNet call's input shape is recorded and priced by counting the full-size StereoCrafter UNet on the
meta device for that shape (stereo_core.compute). Depth comes from a depth video, so only the
inpainting's UNet runs. The tiny UNet's own arithmetic is replaced by a zero prediction of the right
shape, and the tiny VAE decoder's by grey frames of the right size: at the real latent size (72x128)
the UNet's attention over 9216 positions takes half a minute per call on a busy CPU and the decoder
a minute per chunk, and what is counted are the UNet calls, not their values. Everything else (warp,
CLIP, VAE encoder, scheduler, composite, colour match, encoding) runs as in a real conversion.
"""

import time
from fractions import Fraction

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.autoencoders.autoencoder_kl_temporal_decoder import TemporalDecoder

from stereo_core import cli
from stereo_core.compute import TERA, unet_call_flops
from stereo_core.video_io import write_video
from synthetic_video import describe, make_video

FRAMES, WIDTH, HEIGHT = 12, 1920, 1080


@pytest.fixture(scope="module")
def clip_1080p(tmp_path_factory):
    folder = tmp_path_factory.mktemp("budget")
    source = make_video(folder / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, fps=Fraction(24))
    depth = torch.linspace(0.2, 0.7, WIDTH).view(1, 1, WIDTH, 1).repeat(FRAMES, HEIGHT, 1, 3)
    depth[:, 300:700, 700:1100] = 0.95  # a near box: holes beside it in the right eye
    return source, write_video(folder / "depth.mp4", depth, 24)


@pytest.mark.parametrize("preset, budget", [(None, 120), ("fast", 15)])
def test_a_1080p_conversion_stays_within_its_unet_budget(clip_1080p, tmp_path, models_dir, monkeypatch,
                                                         preset, budget):
    source, depth = clip_1080p
    calls = []

    def record(self, sample, *args, **kwargs):
        calls.append(tuple(sample.shape))
        return (torch.zeros((*sample.shape[:2], self.config.out_channels, *sample.shape[-2:]), dtype=sample.dtype),)

    def grey(self, latents, *args, **kwargs):
        return torch.zeros(latents.shape[0], 3, latents.shape[2] * 8, latents.shape[3] * 8, dtype=latents.dtype)

    output = tmp_path / "clip_sbs.mp4"
    started = time.monotonic()
    argv = [str(source), "-o", str(output), "--depth-video", str(depth), "--models", str(models_dir), "--quiet"]
    with monkeypatch.context() as patch:  # not around the pricing, which runs the real UNet on the meta device
        patch.setattr(UNetSpatioTemporalConditionModel, "forward", record)
        patch.setattr(TemporalDecoder, "forward", grey)
        assert cli.main(argv + (["--preset", preset] if preset else [])) == 0
    seconds = time.monotonic() - started

    per_frame = sum(unet_call_flops(shape) for shape in calls) / FRAMES / TERA
    print(f"\n{preset or 'defaults'}: {len(calls)} UNet calls shaped {sorted(set(calls))}, "
          f"{per_frame:.1f} TFLOP of UNet work per output frame (budget {budget}); the tiny run took {seconds:.0f} s")
    assert calls and all(shape[-2:] == (72, 128) for shape in calls), "inpainted at the 1024x576 working size"
    assert per_frame <= budget
    facts = describe(output)
    assert (facts["frames"], facts["width"], facts["height"]) == (FRAMES, 2 * WIDTH, HEIGHT)
