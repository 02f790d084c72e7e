"""Write workflows/*.json (UI format, as the ComfyUI frontend saves it) from compact graphs.

Widget order and defaults come from the nodes' own INPUT_TYPES (ours) and from the
committed /object_info snapshot (core and VideoHelperSuite nodes), so a workflow
cannot drift from the nodes it uses. Run after changing a node's inputs:

    .venv/bin/python tools/build_workflows.py
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import load_pack  # noqa: E402

SNAPSHOT = json.loads((ROOT / "tests/data/object_info_core_vhs.json").read_text())["nodes"]
PACK = load_pack()
WIDGET_KINDS = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def has_seed_control(name, options):
    """The frontend adds a 'control after generate' value after seed widgets."""
    return bool(options.get("control_after_generate")) or name in ("seed", "noise_seed")


def optional_inputs(node_type):
    """Names of the inputs a node can run without."""
    if node_type in PACK.NODE_CLASS_MAPPINGS:
        return set(PACK.NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES().get("optional", {}))
    return set(SNAPSHOT[node_type]["input"].get("optional", {}))


def definition(node_type):
    """(ordered inputs [(name, type, options, is_widget)], outputs [(name, type)]) of a node type."""
    if node_type in PACK.NODE_CLASS_MAPPINGS:
        cls = PACK.NODE_CLASS_MAPPINGS[node_type]
        spec = cls.INPUT_TYPES()
        inputs = []
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                kind = "COMBO" if isinstance(entry[0], list) else entry[0]
                options = dict(entry[1]) if len(entry) > 1 else {}
                if kind == "COMBO":
                    options.setdefault("default", entry[0][0])
                    options["options"] = list(entry[0])
                inputs.append((name, kind, options, kind in WIDGET_KINDS))
        return inputs, list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))
    info = SNAPSHOT[node_type]
    inputs = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            kind, options = info["input"][section][name][0], info["input"][section][name][1]
            if isinstance(kind, list):
                kind, options = "COMBO", {**options, "options": kind}
            inputs.append((name, kind, options, kind in WIDGET_KINDS))
    return inputs, list(zip(info["output_name"], info["output"]))


class Graph:
    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, node_type, pos, widgets=None, title=None, size=(320, 160)):
        """Add a node; widgets overrides defaults by name."""
        node_id = len(self.nodes) + 1
        widgets = widgets or {}
        inputs, outputs = definition(node_type)
        values = []
        for name, kind, options, is_widget in inputs:
            if is_widget:
                values.append(widgets.get(name, options.get("default")))
                if name == "file" and options.get("video_upload"):
                    values.append("image")  # the upload button's value, as the frontend saves it
                if has_seed_control(name, options):
                    values.append("fixed")  # shipped workflows reproduce their result
        entry = {
            "id": node_id, "type": node_type, "pos": list(pos), "size": list(size), "flags": {},
            "order": node_id - 1, "mode": 0,
            "inputs": [{"localized_name": n, "name": n, "type": k, **({"widget": {"name": n}} if w else {}),
                        "link": None} for n, k, _, w in inputs],
            "outputs": [{"localized_name": n, "name": n, "type": k, "links": []} for n, k in outputs],
            "properties": {"Node name for S&R": node_type},
            "widgets_values": values,
        }
        if title:
            entry["title"] = title
        self.nodes.append(entry)
        return node_id

    def note(self, text, pos, size=(420, 260)):
        node_id = len(self.nodes) + 1
        self.nodes.append({"id": node_id, "type": "Note", "pos": list(pos), "size": list(size), "flags": {},
                           "order": node_id - 1, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                           "widgets_values": [text], "color": "#432", "bgcolor": "#653"})

    def link(self, src, output, dst, input_name):
        link_id = len(self.links) + 1
        src_node, dst_node = self.nodes[src - 1], self.nodes[dst - 1]
        slot = [o["name"] for o in src_node["outputs"]].index(output)
        dst_slot = [i["name"] for i in dst_node["inputs"]].index(input_name)
        kind = src_node["outputs"][slot]["type"]
        src_node["outputs"][slot]["links"].append(link_id)
        dst_node["inputs"][dst_slot]["link"] = link_id
        self.links.append([link_id, src, slot, dst, dst_slot, kind])

    def save(self, name):
        for node in self.nodes:
            for output in node["outputs"]:
                output["links"] = output["links"] or None
        graph = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                 "links": self.links, "groups": [], "config": {},
                 "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}
        path = ROOT / "workflows" / f"{name}.json"
        path.write_text(json.dumps(graph, indent=1) + "\n")
        print("wrote", path.relative_to(ROOT))


def load_video(graph, file, pos, title=None):
    """Core Load Video and Get Video Components: the components node (images, audio, fps)."""
    video = graph.node("LoadVideo", pos, {"file": file}, title=title, size=(320, 420))
    components = graph.node("GetVideoComponents", (pos[0] + 360, pos[1]), size=(250, 90))
    graph.link(video, "VIDEO", components, "video")
    return components


def save_video(graph, images, components, prefix, x, y, audio=True):
    """Create Video (the source's fps, and its audio unless audio=False) and Save Video under `prefix`."""
    video = graph.node("CreateVideo", (x, y), size=(270, 100))
    graph.link(images[0], images[1], video, "images")
    graph.link(components, "fps", video, "fps")
    if audio:
        graph.link(components, "audio", video, "audio")
    save = graph.node("SaveVideo", (x + 320, y), {"filename_prefix": prefix}, size=(320, 130))
    graph.link(video, "VIDEO", save, "video")


def save_stereo_outputs(graph, left, right, components, x, y):
    """SBS + anaglyph of (left, right), each to an mp4 with the source's fps and audio."""
    sbs = graph.node("SC3D_SBSCompose", (x, y))
    graph.link(left[0], left[1], sbs, "left")
    graph.link(right[0], right[1], sbs, "right")
    red_cyan = graph.node("SC3D_Anaglyph", (x, y + 220), size=(320, 110))
    graph.link(left[0], left[1], red_cyan, "left")
    graph.link(right[0], right[1], red_cyan, "right")
    for row, (source, output, prefix) in enumerate(((sbs, "stereo", "stereo3d/sbs"),
                                                    (red_cyan, "anaglyph", "stereo3d/anaglyph"))):
        save_video(graph, (source, output), components, prefix, x + 380, y + 220 * row)


def video_with_depthcrafter(graph):
    """Core Load Video and DepthCrafter on its frames: (components node, depth node)."""
    components = load_video(graph, "input_video.mp4", (0, 0))
    loader = graph.node("SC3D_DepthCrafterModelLoader", (0, 460), size=(400, 170))
    depth = graph.node("SC3D_DepthCrafterDepth", (440, 140), size=(330, 360))
    graph.link(loader, "depthcrafter_model", depth, "depthcrafter_model")
    graph.link(components, "images", depth, "image")
    return components, depth


def bring_your_own_depth():
    graph = Graph()
    graph.note(
        "Bring your own depth\n\n"
        "1. Load Video (top): your 2D video.\n"
        "2. Load Video (bottom): a depth video of the same clip (from any depth node or tool; "
        "white = near). Any size: it is resized.\n"
        "3. Forward Warp Stereo: max_disp sets the 3D strength (20 px is the reference; try 'percent' "
        "for resolution-independent strength), convergence moves the screen plane.\n"
        "4. Queue. You get a full side-by-side video and a red/cyan anaglyph in output/stereo3d/, "
        "with the source's frame rate and audio.\n\n"
        "The right eye still has holes (black) where the background was hidden: use the full pipeline "
        "workflow to inpaint them with StereoCrafter.",
        (0, -320), size=(520, 290))
    components = load_video(graph, "input_video.mp4", (0, 0), title="Load Video (left eye)")
    depth_components = load_video(graph, "input_depth.mp4", (0, 460), title="Load Video (depth)")
    warp = graph.node("SC3D_ForwardWarpStereo", (660, 120), size=(330, 230))
    graph.link(components, "images", warp, "image")
    graph.link(depth_components, "images", warp, "depth")
    save_stereo_outputs(graph, (components, "images"), (warp, "right"), components, 1040, 0)
    graph.save("bring_your_own_depth")


def depthcrafter_depth():
    graph = Graph()
    graph.note(
        "DepthCrafter video depth\n\n"
        "1. Download the models once (README, 'Models'): stable-video-diffusion-img2vid-xt-1-1 and "
        "DepthCrafter into ComfyUI/models/stereocrafter/, then pick them in the loader.\n"
        "2. Load Video: your clip.\n"
        "3. DepthCrafter Depth: max_res 1024 is the reference; 512-768 is much faster. On small cards lower "
        "window (70) or choose 'sequential offload' in the loader.\n"
        "4. Queue. output/depth/ gets the depth as a grey video (white = near, ready for Forward Warp Stereo "
        "or other tools) and an inferno-coloured preview, with the source's frame rate.",
        (0, -330), size=(560, 300))
    components, depth = video_with_depthcrafter(graph)
    preview = graph.node("SC3D_DepthVisualize", (820, 260), size=(300, 110))
    graph.link(depth, "depth", preview, "depth")
    for row, (source, output, prefix) in enumerate(((depth, "depth", "depth/depth"),
                                                    (preview, "depth_vis", "depth/depth_inferno"))):
        save_video(graph, (source, output), components, prefix, 1160, 220 * row, audio=False)
    graph.save("depthcrafter_depth")


def full_pipeline():
    graph = Graph()
    graph.note(
        "2D to 3D: the full StereoCrafter pipeline\n\n"
        "1. Download the models once (README, 'Models'): stable-video-diffusion-img2vid-xt-1-1, DepthCrafter "
        "and StereoCrafter into ComfyUI/models/stereocrafter/, then pick them in the two loaders.\n"
        "2. Load Video: your clip.\n"
        "3. DepthCrafter Depth: max_res 1024 is the reference; 512-768 is much faster.\n"
        "4. Forward Warp Stereo: max_disp sets the 3D strength (20 px = the reference), convergence the screen "
        "plane.\n"
        "5. StereoCrafter Inpaint Chunked fills the holes. Out of GPU memory? Raise tile_num, lower frames_chunk, "
        "or choose 'sequential offload' in the loaders.\n"
        "6. Queue. output/stereo3d/ gets a full side-by-side video and a red/cyan anaglyph with the source's "
        "frame rate and audio.",
        (0, -380), size=(600, 340))
    components, depth = video_with_depthcrafter(graph)
    warp = graph.node("SC3D_ForwardWarpStereo", (810, 140), size=(330, 230))
    graph.link(components, "images", warp, "image")
    graph.link(depth, "depth", warp, "depth")
    inpaint_loader = graph.node("SC3D_StereoCrafterModelLoader", (440, 560), size=(400, 170))
    inpaint = graph.node("SC3D_StereoCrafterInpaintChunked", (1180, 140), size=(340, 400))
    graph.link(inpaint_loader, "stereocrafter_model", inpaint, "stereocrafter_model")
    graph.link(warp, "right", inpaint, "warped")
    graph.link(warp, "occlusion", inpaint, "mask")
    graph.link(components, "images", inpaint, "left")
    save_stereo_outputs(graph, (components, "images"), (inpaint, "right"), components, 1560, 0)
    graph.save("full_pipeline")


if __name__ == "__main__":
    bring_your_own_depth()
    depthcrafter_depth()
    full_pipeline()
