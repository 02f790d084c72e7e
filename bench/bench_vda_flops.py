"""Video Depth Anything's compute per frame at real size, counted on the meta device (no weights needed).

    .venv/bin/python bench/bench_vda_flops.py [--input-size 518]

One 32-frame window through the published ViT-S/B/L network, counted by torch's FlopCounterMode
(matrix products, attention and convolutions), divided by the 22 new frames each window adds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_core import video_depth_anything as vda  # noqa: E402

SIZES = ((1080, 1920), (576, 1024), (720, 1280), (272, 640))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", type=int, default=vda.INPUT_SIZE)
    args = parser.parse_args()
    print(f"{'frame':>10} {'model input':>12} " + " ".join(f"{name:>14}" for name in vda.ENCODERS))
    for height, width in SIZES:
        rows, cols = vda.model_input_size(height, width, args.input_size)
        figures = [vda.flops_per_frame(encoder, height, width, args.input_size) / 1e12 for encoder in vda.ENCODERS]
        print(f"{width:>5}x{height:<4} {cols:>6}x{rows:<5} " + " ".join(f"{f:>8.3f} TFLOP" for f in figures))


if __name__ == "__main__":
    main()
