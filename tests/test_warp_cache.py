"""The compiled warp kernel's on-disk cache, shared by the pack's two import names."""

import json
import os
import subprocess
import sys

from conftest import ROOT

# Imports the kernel as `stereo_core.warp_cpu` (command line, scripts) or, like ComfyUI,
# under the pack's folder name, runs it once and reports how it got its machine code.
_RUN_KERNEL = """
import importlib, importlib.util, json, sys
import torch
root, package = sys.argv[1], sys.argv[2]
if package == "stereo_core":
    sys.path.insert(0, root)
    prefix = ""
else:
    spec = importlib.util.spec_from_file_location(package, root + "/__init__.py", submodule_search_locations=[root])
    sys.modules[package] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[package])
    prefix = package + "."
kernel = importlib.import_module(prefix + "stereo_core.warp_cpu")
warped, _ = kernel.splat_rows_compiled(torch.ones(2, 5, 3), torch.zeros(2, 5), 0.0)
stats = kernel._splat_rgb_rows.stats
print(json.dumps({"module": kernel.__name__, "hits": sum(stats.cache_hits.values()), "sum": warped.sum().item()}))
"""


def run_kernel(package, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    result = subprocess.run(
        [sys.executable, "-c", _RUN_KERNEL, str(ROOT), package], env=env, cwd=cache_dir, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_cache_written_under_one_import_name_does_not_break_the_other(tmp_path):
    # numba reloads cached code by re-importing its module by name: an entry written by
    # the command line must not be loaded by ComfyUI's import, and the reverse.
    first = [run_kernel(package, tmp_path) for package in ("stereo_core", "sc3d_comfy_folder")]
    again = [run_kernel(package, tmp_path) for package in ("stereo_core", "sc3d_comfy_folder")]
    assert [run["module"] for run in first] == ["stereo_core.warp_cpu", "sc3d_comfy_folder.stereo_core.warp_cpu"]
    assert [run["hits"] for run in first] == [0, 0]
    assert [run["hits"] for run in again] == [1, 1]  # each name reuses its own entry
    assert {run["sum"] for run in first + again} == {30.0}


def test_the_first_compiled_warp_leaves_torchs_thread_count_alone():
    # Numba's OpenMP layer resets the process's thread count when it starts; torch shares it, so
    # every later model result would depend on whether a warp ran first (and differ after a resume).
    script = (f"import sys, torch; sys.path.insert(0, {str(ROOT)!r}); torch.set_num_threads(1)\n"
              "from stereo_core.warp import forward_warp\n"
              "forward_warp(torch.rand(1, 4, 8, 3), torch.zeros(1, 4, 8))\n"
              "print(torch.get_num_threads())")
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip().splitlines()[-1] == "1"
