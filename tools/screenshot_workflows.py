"""Screenshots of the shipped workflows as loaded in the real ComfyUI frontend, for the README.

Uses the ComfyUI test harness (../shared/tools/comfy, see its README) against a running server:

    python3 ../shared/tools/comfy/comfyh.py serve --pack . --name stereocrafter-3d \
        --pack /path/to/ComfyUI-VideoHelperSuite --input clip.mp4=input_video.mp4 --models-dir MODELS &
    python3 tools/screenshot_workflows.py --url http://127.0.0.1:PORT

Writes docs/workflows/<name>.png. The viewport is large and the frontend's low-quality
thresholds lowered, so node titles and widget values stay drawn when the graph is fitted.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

READABLE_JS = """async () => {
  const settings = window.app.extensionManager.setting;
  await settings.set('LiteGraph.Canvas.LowQualityRenderingZoomThreshold', 0.2);
  // Frontend 1.35 switches to boxes-only drawing by font size (default: below 8 px, i.e. zoom < ~57%).
  await settings.set('LiteGraph.Canvas.MinFontSizeForLOD', 1);
  return true; }"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="A running ComfyUI with this pack (comfyh.py serve).")
    parser.add_argument("--harness", type=Path, default=ROOT.parent / "shared" / "tools" / "comfy")
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: the harness's).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "workflows")
    parser.add_argument("--size", default="2000x1150", help="Viewport WIDTHxHEIGHT.")
    args = parser.parse_args()

    sys.path.insert(0, str(args.harness))
    from comfyh_lib.frontend import FIT_VIEW_JS, open_frontend

    chromium = args.chromium
    if chromium is None:
        env = Path(os.environ.get("COMFY_HARNESS_HOME", Path.home() / ".comfy-harness")) / "harness-env.json"
        chromium = json.loads(env.read_text())["chromium"]
    width, height = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    with open_frontend(args.url, chromium, viewport=(width, height)) as frontend:
        frontend.page.evaluate(READABLE_JS)
        for path in sorted((ROOT / "workflows").glob("*.json")):
            result = frontend.load_workflow(json.loads(path.read_text()))
            problems = [key for key in ("missing_node_types", "dialogs") if result.get(key)]
            frontend.page.evaluate(FIT_VIEW_JS)
            frontend.page.wait_for_timeout(1500)  # fitting animates; it draws in low quality until it settles
            frontend.page.evaluate("() => { window.app.canvas.setDirty(true, true); window.app.canvas.draw(true, true); }")
            shot = frontend.screenshot(str(args.out / f"{path.stem}.png"), fit=False)
            print(shot, "problems: " + ", ".join(problems) if problems else "")


if __name__ == "__main__":
    main()
