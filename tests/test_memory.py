"""Long clips: the memory a warp needs beyond its input and output is bounded by the batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(1)
from stereo_core.splatting import warp_clip

def peak_kib():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1])

def rss_kib():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1])

frames = int(sys.argv[2])
image = torch.rand(frames, 96, 256, 3)
depth = torch.rand(frames, 96, 256, 1)
warp_clip(image[:8], depth[:8])  # load code paths once
before = rss_kib()
right, occlusion = warp_clip(image, depth)
outputs_kib = (right.numel() + occlusion.numel()) * 4 // 1024
print(json.dumps({"extra_kib": peak_kib() - before - outputs_kib, "outputs_kib": outputs_kib}))
"""


def extra_memory_kib(frames):
    # Large blocks via mmap are returned to the OS when freed, so the peak reflects what
    # the warp really holds rather than glibc heap fragmentation.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    result = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), str(frames)],
                            capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_extra_memory_does_not_grow_with_clip_length():
    short = extra_memory_kib(64)
    long = extra_memory_kib(512)  # 8x the frames: ~150 MB of input, ~200 MB of output
    # a whole-clip implementation would need ~10 float planes per pixel of the clip:
    # ~60 MB more for the short clip and ~500 MB more for the long one
    assert long["extra_kib"] < 48 * 1024, long
    assert long["extra_kib"] < short["extra_kib"] + 24 * 1024, (short, long)
