"""Seams of the two tile blends (InpaintSettings.tile_blend), measured on latents that disagree between tiles.

Each tile of a 2x2 / 3x3 grid is its own random constant (tiles that disagree, as diffusion run per
tile does). A blend hides the disagreement well when the assembled field never jumps: printed is
the largest step between neighbouring latents,
in units of the largest offset difference between neighbouring tiles, over the whole frame and away
from the corners where four tiles meet. Lower is better; a linear fade over 16 latents steps 1/16.

    .venv/bin/python bench/bench_tile_seams.py
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_core.inpainting import TILE_BLENDS, blend_tiles, plan_tiles  # noqa: E402


def seam_steps(count: int, length: int, trials: int = 200) -> dict[str, tuple[float, float]]:
    grid = plan_tiles(length, count, 16)
    generator = torch.Generator().manual_seed(0)
    worst = {mode: [0.0, 0.0] for mode in TILE_BLENDS}
    corner = torch.zeros(length, length, dtype=torch.bool)
    for start in grid.starts[1:]:
        for other in grid.starts[1:]:
            corner[start - 2:start + 18, other - 2:other + 18] = True
    for _ in range(trials):
        offsets = torch.randn(count, count, generator=generator)
        scale = max(float((offsets[1:] - offsets[:-1]).abs().max()), float((offsets[:, 1:] - offsets[:, :-1]).abs().max()))
        tiles = [[torch.full((1, 1, grid.size, grid.size), float(offsets[i, j])) for j in range(count)]
                 for i in range(count)]
        for mode in TILE_BLENDS:
            result = blend_tiles([[t.clone() for t in row] for row in tiles], grid, grid, mode)[0, 0]
            steps = torch.zeros(length, length)
            steps[1:] = (result[1:] - result[:-1]).abs()
            steps[:, 1:] = torch.maximum(steps[:, 1:], (result[:, 1:] - result[:, :-1]).abs())
            worst[mode][0] = max(worst[mode][0], float(steps.max()) / scale)
            worst[mode][1] = max(worst[mode][1], float(steps[~corner].max()) / scale)
    return worst


def main() -> None:
    print(f"{'grid':<26} {'blend':<10} {'largest step':>13} {'away from corners':>18}")
    for count, length in ((2, 72), (3, 112)):
        for mode, (anywhere, edges) in seam_steps(count, length).items():
            print(f"{count}x{count} tiles, {length * 8} px side {mode:<10} {anywhere:>13.3f} {edges:>18.3f}")


if __name__ == "__main__":
    main()
