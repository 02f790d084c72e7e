"""Warp throughput: the Forward Warp Stereo node, called as ComfyUI calls it, next to a
straightforward vectorised transcription of the reference (bench/reference_warp.py),
measured alternately in one run.

    .venv/bin/python bench/bench_warp.py [--frames 8] [--rounds 7] [--threads 2]

The node's time is end to end: a grey depth IMAGE [T, H, W, 3] and the left IMAGE in,
the right IMAGE and occlusion MASK out, input checks, depth normalisation and
disparity included. The reference's time is its splat alone, on planar tensors and a
disparity prepared beforehand (what it costs is not counted in its favour).
Prints frames/s at 1024x576 on the CPU, the speed ratio, the compiled splat alone for
context, and the largest differences away from the border (where the reference's border
rule differs by design). Where CUDA is available, also the splat at 1920x1080 on the GPU.
"""

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_warp import reference_forward_warp  # noqa: E402
from stereo_core.warp import forward_warp  # noqa: E402

NODE = "SC3D_ForwardWarpStereo"


def load_pack():
    """The repository imported as a custom-node package, as ComfyUI imports it."""
    name = "sc3d_pack_bench"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def scene(frames, height, width, device):
    """Random colours over a blocky depth map (smooth areas, edges, collisions, holes),
    the depth as a grey 3-channel IMAGE as depth nodes output it."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(frames, height, width, 3, generator=generator)
    depth = torch.rand(frames, 1, height // 32, width // 32, generator=generator)
    depth = torch.nn.functional.interpolate(depth, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    depth_image = depth.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()
    normalized = (depth - depth.min()) / (depth.max() - depth.min())  # the reference's whole-clip min-max
    disparity = (normalized * 2 - 1) * 20.0
    return image.to(device), depth_image.to(device), disparity.to(device)


def node_call(pack):
    """The node's function with its widgets at their defaults, called with keyword inputs as ComfyUI does."""
    node_class = pack.NODE_CLASS_MAPPINGS[NODE]
    widgets = {name: spec[1]["default"] for name, spec in node_class.INPUT_TYPES()["required"].items()
               if len(spec) > 1 and "default" in spec[1]}
    function = getattr(node_class(), node_class.FUNCTION)
    return lambda image, depth: function(image=image, depth=depth, **widgets), widgets


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def inner_difference(ours, ref):
    """Largest colour and occlusion differences away from the last row and the side columns."""
    colour = (ours[0].permute(0, 3, 1, 2) - ref[0])[:, :, :-1, 1:-1].abs().max().item()
    mask = (ours[1] - ref[1][:, 0])[:, :-1, 1:-1].abs().max().item()
    return colour, mask


def compare(candidates, reference, rounds, device):
    """Median seconds per call of each candidate and of the reference, alternating calls."""
    times = {name: [] for name in [*candidates, "reference"]}
    results = {}
    for _ in range(rounds + 1):  # the first round warms up; alternating shares machine noise fairly
        for name, fn in [*candidates.items(), ("reference", reference)]:
            elapsed, results[name] = timed(fn, device)
            times[name].append(elapsed)
    return {name: statistics.median(values[1:]) for name, values in times.items()}, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch and the compiled splat")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pack = load_pack()
    # As on a machine without a GPU: the node works where ComfyUI's device is, here the CPU.
    pack.nodes.geometry_nodes.compute_device = lambda: torch.device("cpu")
    node, widgets = node_call(pack)

    cpu = torch.device("cpu")
    image, depth, disparity = scene(args.frames, 576, 1024, cpu)
    planar_image, planar_disp = image.permute(0, 3, 1, 2).contiguous(), disparity.unsqueeze(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.frames} frames per call, "
          f"median of {args.rounds} alternating rounds; node widgets {widgets}")
    seconds, results = compare(
        {"node": lambda: node(image, depth), "splat": lambda: forward_warp(image, disparity, -20.0, 20.0)},
        lambda: reference_forward_warp(planar_image, planar_disp), args.rounds, cpu)
    fps = {name: args.frames / value for name, value in seconds.items()}
    print(f"CPU 1024x576: Forward Warp Stereo node {fps['node']:.1f} frames/s (depth IMAGE in, right IMAGE + MASK "
          f"out), straightforward reference {fps['reference']:.1f} frames/s")
    print(f"  node-path speed-up {fps['node'] / fps['reference']:.2f}x")
    print(f"  compiled splat alone {fps['splat']:.1f} frames/s, {fps['splat'] / fps['reference']:.2f}x; the node "
          f"spends {100 * (1 - seconds['splat'] / seconds['node']):.0f}% of its time outside the splat")
    colour, mask = inner_difference(results["node"], results["reference"])
    print(f"  node against the reference, away from the border: colour {colour:.2e}, occlusion {mask:.2e}")
    colour = (results["node"][0] - results["splat"][0]).abs().max().item()
    mask = (results["node"][1] - results["splat"][1]).abs().max().item()
    print(f"  node against the splat of the same disparity: colour {colour:.2e}, occlusion {mask:.2e}")

    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        image, _, disparity = scene(args.frames, 1080, 1920, gpu)
        planar_image, planar_disp = image.permute(0, 3, 1, 2).contiguous(), disparity.unsqueeze(1)
        seconds, results = compare({"ours": lambda: forward_warp(image, disparity)},
                                   lambda: reference_forward_warp(planar_image, planar_disp), args.rounds, gpu)
        colour, mask = inner_difference(results["ours"], results["reference"])
        print(f"GPU ({torch.cuda.get_device_name()}) 1920x1080 splat: ours {args.frames / seconds['ours']:.1f} "
              f"frames/s, straightforward reference {args.frames / seconds['reference']:.1f} frames/s; max diff "
              f"colour {colour:.2e}, occlusion {mask:.2e}")
    else:
        print("no CUDA device here: GPU figures not measured")


if __name__ == "__main__":
    main()
