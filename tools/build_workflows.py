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
OUTPUT_DIR = ROOT / "workflows"
# Nodes that live only in the frontend: no definition in /object_info, nothing to execute.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_KINDS = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
# Widgets that a node's frontend extension adds, as the frontend saves them. Preview as Text shows the text in
# two read-only boxes that are not saved (null) and a Markdown toggle, which on load takes the first saved
# value: [null, null, null] is what the frontend saves again after loading it (as core's own templates hold).
FRONTEND_WIDGETS = {"PreviewAny": [None, None, None]}


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
            entry = info["input"][section][name]
            kind, options = entry[0], dict(entry[1]) if len(entry) > 1 else {}
            if isinstance(kind, list):
                kind, options = "COMBO", {**options, "options": kind}
            inputs.append((name, kind, options, kind in WIDGET_KINDS))
    return inputs, list(zip(info["output_name"], info["output"]))


def uses_widget_dict(node_type):
    """VideoHelperSuite's frontend saves widgets_values as a {name: value} dict."""
    return node_type.startswith("VHS_")


def read_widgets(node):
    """A saved node's widget values by name, and the extra values VHS's dict form adds (inverse of Graph.node).

    Raises ValueError when the values do not line up with the node's widgets.
    """
    widgets = [(name, options) for name, _, options, is_widget in definition(node["type"])[0] if is_widget]
    saved = node["widgets_values"]
    if isinstance(saved, dict):
        missing = [name for name, _ in widgets if name not in saved]
        if missing:
            raise ValueError(f"{node['type']} lacks values for {missing}")
        names = {name for name, _ in widgets}
        return ({name: saved[name] for name, _ in widgets},
                {key: value for key, value in saved.items() if key not in names})
    added = FRONTEND_WIDGETS.get(node["type"], [])
    if added:
        if saved[-len(added):] != added:
            raise ValueError(f"{node['type']} lacks the frontend's own widget values {added}")
        saved = saved[:-len(added)]
    values, queue = {}, list(saved)
    for name, options in widgets:
        if not queue:
            raise ValueError(f"{node['type']} lacks a value for widget {name}")
        values[name] = queue.pop(0)
        if options.get("video_upload") or options.get("image_upload"):
            if queue.pop(0) != "image":
                raise ValueError(f"{node['type']}.{name} lacks the upload button's value")
        elif has_seed_control(name, options):
            if queue.pop(0) not in ("fixed", "increment", "decrement", "randomize"):
                raise ValueError(f"{node['type']}.{name} lacks its control_after_generate value")
    if queue:
        raise ValueError(f"{node['type']} has extra widget values {queue}")
    return values, {}


class Graph:
    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, node_type, pos, widgets=None, title=None, size=(320, 160), extra_widgets=None):
        """Add a node; widgets overrides defaults by name. extra_widgets: widgets a pack's own JS adds
        (VideoHelperSuite's format options), which only VHS's dict form of widgets_values holds."""
        node_id = len(self.nodes) + 1
        widgets = widgets or {}
        inputs, outputs = definition(node_type)
        values = []
        for name, kind, options, is_widget in inputs:
            if is_widget:
                values.append(widgets.get(name, options.get("default")))
                if (name == "file" and options.get("video_upload")) or options.get("image_upload"):
                    values.append("image")  # the upload button's value, as the frontend saves it
                if has_seed_control(name, options):
                    values.append("fixed")  # shipped workflows reproduce their result
        values += FRONTEND_WIDGETS.get(node_type, [])
        if uses_widget_dict(node_type):
            names = [name for name, _, _, is_widget in inputs if is_widget]
            values = {**dict(zip(names, values)), **(extra_widgets or {}),
                      "videopreview": {"hidden": False, "paused": False, "params": {}}}
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
        path = OUTPUT_DIR / f"{name}.json"
        path.write_text(json.dumps(graph, indent=1) + "\n")
        print("wrote", path)


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


def core_saver(graph, components):
    """save(images, prefix, x, y) with core Create Video / Save Video, the source's fps and audio."""
    return lambda images, prefix, x, y: save_video(graph, images, components, prefix, x, y)


def vhs_saver(graph, loader, info):
    """save(images, prefix, x, y) with VHS Video Combine (h264 mp4), the loaded fps and the source's audio."""
    def save(images, prefix, x, y):
        combine = graph.node("VHS_VideoCombine", (x, y), {"filename_prefix": prefix, "format": "video/h264-mp4"},
                             size=(320, 330), extra_widgets={"pix_fmt": "yuv420p", "crf": 19, "save_metadata": True,
                                                             "trim_to_audio": False})
        graph.link(images[0], images[1], combine, "images")
        graph.link(info, "fps🟦", combine, "frame_rate")
        graph.link(loader, "audio", combine, "audio")
    return save


def save_stereo_outputs(graph, left, right, x, y, save, row_height=280):
    """SBS + anaglyph of (left, right), each written by save(images, prefix, x, y), the anaglyph's row
    row_height below the SBS one (room for the saver's node and the video preview it shows after a run)."""
    sbs = graph.node("SC3D_SBSCompose", (x, y), size=(320, 230))
    graph.link(left[0], left[1], sbs, "left")
    graph.link(right[0], right[1], sbs, "right")
    red_cyan = graph.node("SC3D_Anaglyph", (x, y + row_height), size=(320, 110))
    graph.link(left[0], left[1], red_cyan, "left")
    graph.link(right[0], right[1], red_cyan, "right")
    save((sbs, "stereo"), "stereo3d/sbs", x + 380, y)
    save((red_cyan, "anaglyph"), "stereo3d/anaglyph", x + 380, y + row_height)


def depthcrafter(graph, images, pos):
    """DepthCrafter Model Loader + DepthCrafter Depth on `images`: the depth node."""
    loader = graph.node("SC3D_DepthCrafterModelLoader", (pos[0] - 440, pos[1] + 320), size=(400, 170))
    depth = graph.node("SC3D_DepthCrafterDepth", pos, size=(330, 360))
    graph.link(loader, "depthcrafter_model", depth, "depthcrafter_model")
    graph.link(images[0], images[1], depth, "image")
    return depth


def vda_depth(graph, images, pos):
    """Video Depth Anything Model Loader + Video Depth Anything Depth on `images`: the depth node."""
    loader = graph.node("SC3D_VideoDepthAnythingModelLoader", (pos[0] - 440, pos[1] + 320), size=(400, 130))
    depth = graph.node("SC3D_VideoDepthAnythingDepth", pos, size=(330, 120))
    graph.link(loader, "video_depth_anything_model", depth, "video_depth_anything_model")
    graph.link(images[0], images[1], depth, "image")
    return depth


def warp(graph, images, depth, pos):
    node = graph.node("SC3D_ForwardWarpStereo", pos, size=(330, 230))
    graph.link(images[0], images[1], node, "image")
    graph.link(depth[0], depth[1], node, "depth")
    return node


def inpaint(graph, left, warped, mask, pos, loader_pos=None):
    """StereoCrafter Model Loader + Inpaint Chunked on the warped view: the inpaint node."""
    loader_pos = loader_pos or (pos[0] - 740, pos[1] + 420)
    loader = graph.node("SC3D_StereoCrafterModelLoader", loader_pos, size=(400, 170))
    node = graph.node("SC3D_StereoCrafterInpaintChunked", pos, size=(340, 400))
    graph.link(loader, "stereocrafter_model", node, "stereocrafter_model")
    graph.link(warped[0], warped[1], node, "warped")
    graph.link(mask[0], mask[1], node, "mask")
    graph.link(left[0], left[1], node, "left")
    return node


def depth_and_warp(graph, images):
    """DepthCrafter on `images`, then Forward Warp Stereo by that depth: (depth node, warp node)."""
    depth = depthcrafter(graph, images, (440, 140))
    return depth, warp(graph, images, (depth, "depth"), (810, 140))


def depth_warp_inpaint(graph, images):
    """The whole conversion of `images`: DepthCrafter, Forward Warp Stereo, StereoCrafter; the inpaint node."""
    _, right = depth_and_warp(graph, images)
    return inpaint(graph, images, (right, "right"), (right, "occlusion"), (1180, 140))


MODELS_STEP = ("Models, once: turn on download_if_missing in the loaders to fetch them into "
               "ComfyUI/models/stereocrafter/ on the first run (Stable Video Diffusion is gated: accept its licence "
               "on Hugging Face and run `hf auth login` first), or use the pack's download command (README, "
               "'Models'). Needed")
STRENGTH_STEP = ("Forward Warp Stereo: max_disp sets the 3D strength (20 'reference' = the reference's look at any "
                 "size), convergence the screen plane.")
INPAINT_STEP = ("StereoCrafter Inpaint Chunked fills the holes. Out of GPU memory? Raise tile_num, lower frames_chunk, "
                "or choose 'sequential offload' in the loader.")


def comfort_previews(graph, check, x, y):
    """Preview Image of the comfort check's plot, and Preview as Text of its verdict below it."""
    plot = graph.node("PreviewImage", (x, y), title="Comfort plot", size=(700, 380))
    graph.link(check, "plot", plot, "images")
    verdict = graph.node("PreviewAny", (x, y + 430), title="Comfort verdict", size=(700, 170))
    graph.link(check, "verdict", verdict, "source")


def check_comfort(graph, images, depth, fps, pos, widgets=None):
    """Stereo Comfort Check of `depth` (for `images`, at the video's fps): the check node."""
    check = graph.node("SC3D_StereoComfortCheck", pos, widgets, size=(340, 330))
    graph.link(depth[0], depth[1], check, "depth")
    graph.link(images[0], images[1], check, "image")
    graph.link(fps[0], fps[1], check, "fps")
    return check


COMFORT_STEP = ("Stereo Comfort Check: the limits are BSkyB's 3D guidelines (1% of the width in front of the "
                "screen, 2% behind, 3% range); screen_width_px is the screen you will watch on (the plot's pixel "
                "axis).")
COMFORT_RESULT = ("Preview Image shows the nearest, median and farthest disparity of every frame against the "
                  "limits; Preview as Text the verdict (how many frames are beyond them, and the worst).")


def bring_your_own_depth():
    graph = Graph()
    graph.note(
        "Bring your own depth\n\n"
        "1. Load Video (top): your 2D video.\n"
        "2. Load Video (bottom): a depth video of the same clip (from any depth node or tool; "
        "white = near). Any size: it is resized.\n"
        "3. Forward Warp Stereo: max_disp sets the 3D strength (20 'reference' is the reference's look at "
        "any size; 'pixels' counts the video's own pixels), convergence moves the screen plane.\n"
        "4. Queue. You get a full side-by-side video and a red/cyan anaglyph in output/stereo3d/, "
        "with the source's frame rate and audio.\n\n"
        "The right eye still has holes (black) where the background was hidden: use the full pipeline "
        "workflow to inpaint them with StereoCrafter.",
        (0, -320), size=(520, 290))
    components = load_video(graph, "input_video.mp4", (0, 0), title="Load Video (left eye)")
    depth_components = load_video(graph, "input_depth.mp4", (0, 460), title="Load Video (depth)")
    right = warp(graph, (components, "images"), (depth_components, "images"), (660, 120))
    save_stereo_outputs(graph, (components, "images"), (right, "right"), 1040, 0, core_saver(graph, components))
    graph.save("bring_your_own_depth")


def depthcrafter_depth():
    graph = Graph()
    graph.note(
        "DepthCrafter video depth\n\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1 and DepthCrafter.\n"
        "2. Load Video: your clip.\n"
        "3. DepthCrafter Depth: max_res 1024 is the reference; 512-768 is much faster. On small cards lower "
        "window (70) or choose 'sequential offload' in the loader.\n"
        "4. Queue. output/depth/ gets the depth as a grey video (white = near, ready for Forward Warp Stereo "
        "or other tools) and an inferno-coloured preview, with the source's frame rate.",
        (0, -330), size=(560, 300))
    components = load_video(graph, "input_video.mp4", (0, 0))
    depth = depthcrafter(graph, (components, "images"), (440, 140))
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
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1, DepthCrafter and StereoCrafter.\n"
        "2. Load Video: your clip.\n"
        "3. DepthCrafter Depth: max_res 1024 is the reference; 512-768 is much faster.\n"
        f"4. {STRENGTH_STEP}\n"
        f"5. {INPAINT_STEP}\n"
        "6. Queue. output/stereo3d/ gets a full side-by-side video and a red/cyan anaglyph with the source's "
        "frame rate and audio.",
        (0, -380), size=(600, 340))
    components = load_video(graph, "input_video.mp4", (0, 0))
    filled = depth_warp_inpaint(graph, (components, "images"))
    save_stereo_outputs(graph, (components, "images"), (filled, "right"), 1560, 0, core_saver(graph, components))
    graph.save("full_pipeline")


def video_depth_anything():
    graph = Graph()
    graph.note(
        "2D to 3D with Video Depth Anything depth\n\n"
        "1. Models, once: turn on download_if_missing in the loaders to fetch them into "
        "ComfyUI/models/stereocrafter/ on the first run (Stable Video Diffusion is gated: accept its licence on "
        "Hugging Face and run `hf auth login` first), or use the pack's download command (README, 'Models'). "
        "Needed: Video-Depth-Anything-Small (Apache-2.0; -Base and -Large are CC-BY-NC-4.0, non-commercial), "
        "stable-video-diffusion-img2vid-xt-1-1 and StereoCrafter.\n"
        "2. Load Video: your clip.\n"
        "3. Video Depth Anything Depth: much faster than DepthCrafter; input_size 518 is the reference, lower is "
        "faster and coarser.\n"
        f"4. {STRENGTH_STEP}\n"
        f"5. {INPAINT_STEP}\n"
        "6. Queue. output/stereo3d/ gets a full side-by-side video and a red/cyan anaglyph with the source's "
        "frame rate and audio.",
        (0, -400), size=(600, 360))
    components = load_video(graph, "input_video.mp4", (0, 0))
    images = (components, "images")
    depth = vda_depth(graph, images, (440, 140))
    right = warp(graph, images, (depth, "depth"), (810, 140))
    filled = inpaint(graph, images, (right, "right"), (right, "occlusion"), (1180, 140))
    save_stereo_outputs(graph, images, (filled, "right"), 1560, 0, core_saver(graph, components))
    graph.save("video_depth_anything")


def stage1_splatting():
    graph = Graph()
    graph.note(
        "Stage 1: depth and splatting to a 2x2 grid video\n\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1 and DepthCrafter.\n"
        "2. Load Video: your clip.\n"
        f"3. {STRENGTH_STEP}\n"
        "4. Queue. output/stereo3d/ gets the splatting grid at twice the size: left view | depth over "
        "occlusion mask | warped right view. It is the hand-off format of the reference scripts: inpaint it "
        "later with the stage2_inpainting workflow (on a bigger GPU, or overnight) or with the reference's "
        "inpainting script.",
        (0, -340), size=(560, 300))
    components = load_video(graph, "input_video.mp4", (0, 0))
    depth, right = depth_and_warp(graph, (components, "images"))
    grid = graph.node("SC3D_SplatGridCompose", (1180, 140), size=(300, 170))
    graph.link(components, "images", grid, "left")
    graph.link(depth, "depth", grid, "depth")
    graph.link(right, "occlusion", grid, "occlusion")
    graph.link(right, "right", grid, "warped")
    save_video(graph, (grid, "grid"), components, "stereo3d/splatting_grid", 1520, 140)
    graph.save("stage1_splatting")


def stage2_inpainting():
    graph = Graph()
    graph.note(
        "Stage 2: inpaint a splatting-grid video\n\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1 and StereoCrafter.\n"
        "2. Load Video: a 2x2 splatting-grid video from the stage1_splatting workflow or from the reference's "
        "splatting script, exactly as written (not resized or cropped).\n"
        f"3. {INPAINT_STEP}\n"
        "4. Queue. output/stereo3d/ gets the full side-by-side video and a red/cyan anaglyph at the grid's frame "
        "rate, with its audio.",
        (0, -330), size=(560, 290))
    components = load_video(graph, "input_grid.mp4", (0, 0), title="Load Video (splatting grid)")
    split = graph.node("SC3D_SplatGridSplit", (660, 0), size=(260, 130))
    graph.link(components, "images", split, "grid")
    filled = inpaint(graph, (split, "left"), (split, "warped"), (split, "occlusion"), (980, 0), loader_pos=(520, 200))
    save_stereo_outputs(graph, (split, "left"), (filled, "right"), 1360, 0, core_saver(graph, components))
    graph.save("stage2_inpainting")


def videohelpersuite_full_pipeline():
    graph = Graph()
    graph.note(
        "2D to 3D with VideoHelperSuite nodes\n\n"
        "The full pipeline with VHS Load Video / Video Combine (needs ComfyUI-VideoHelperSuite).\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1, DepthCrafter and StereoCrafter.\n"
        "2. Load Video (VHS): your clip; frame_load_cap / skip_first_frames pick a part of it, force_rate "
        "resamples it.\n"
        f"3. {STRENGTH_STEP}\n"
        f"4. {INPAINT_STEP}\n"
        "5. Queue. Video Combine writes the SBS video and the anaglyph to output/stereo3d/ at the loaded frame "
        "rate (from Video Info), with the audio.",
        (-400, -360), size=(600, 320))
    loader = graph.node("VHS_LoadVideo", (-400, 0), {"video": "input_video.mp4", "format": "None"}, size=(320, 520))
    info = graph.node("VHS_VideoInfoLoaded", (-400, 580), size=(260, 150))
    graph.link(loader, "video_info", info, "video_info")
    filled = depth_warp_inpaint(graph, (loader, "IMAGE"))
    # Video Combine with its mp4 options is about 420 high before a run, and shows the video below them after.
    save_stereo_outputs(graph, (loader, "IMAGE"), (filled, "right"), 1560, 0, vhs_saver(graph, loader, info),
                        row_height=620)
    graph.save("videohelpersuite_full_pipeline")


def comfort_check():
    graph = Graph()
    graph.note(
        "Is the 3D comfortable? Check before you render\n\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1 and DepthCrafter.\n"
        "2. Load Video: your clip.\n"
        "3. DepthCrafter Depth: max_res 512-768 is enough for a check and much faster than 1024.\n"
        "4. Stereo Comfort Check: set max_disp, disp_unit, convergence, invert_depth and normalize as you will "
        "in Forward Warp Stereo or Stereo Convert Video. " + COMFORT_STEP.split(": ", 1)[1] + "\n"
        "5. Queue. " + COMFORT_RESULT + "\n\n"
        "Too strong overall: lower max_disp. Too much in front of the screen: raise convergence; too far "
        "behind: lower it. Or let the auto_convergence workflow move the screen plane per shot.",
        (0, -400), size=(600, 360))
    components = load_video(graph, "input_video.mp4", (0, 0))
    depth = depthcrafter(graph, (components, "images"), (440, 140))
    check = check_comfort(graph, (components, "images"), (depth, "depth"), (components, "fps"), (810, 140))
    comfort_previews(graph, check, 1200, 0)
    graph.save("comfort_check")


def auto_convergence():
    graph = Graph()
    graph.note(
        "2D to 3D with auto-convergence and a comfort check\n\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1, DepthCrafter and StereoCrafter.\n"
        "2. Load Video: your clip.\n"
        "3. Auto Convergence moves the screen plane per shot so the main subject sits near it, gliding over "
        "smoothing_seconds (the video's frame rate comes from Load Video). Several shots: list their first "
        "frames in shot_starts (e.g. '0, 120, 348'); empty = one shot. The planes it chose show in the text "
        "preview under it.\n"
        "4. Forward Warp Stereo and Stereo Comfort Check take its re-centred depth: keep their normalize at "
        "'none', invert_depth off and convergence equal to Auto Convergence's. max_disp sets the 3D strength "
        "(20 'reference' = the reference's look at any size); give both the same.\n"
        f"5. {INPAINT_STEP}\n"
        "6. Queue. output/stereo3d/ gets a full side-by-side video and a red/cyan anaglyph with the source's "
        "frame rate and audio. " + COMFORT_RESULT,
        (0, -460), size=(620, 420))
    components = load_video(graph, "input_video.mp4", (0, 0))
    images = (components, "images")
    depth = depthcrafter(graph, images, (440, 140))
    converge = graph.node("SC3D_AutoConvergenceDepth", (810, 140), size=(330, 330))
    graph.link(depth, "depth", converge, "depth")
    graph.link(components, "fps", converge, "fps")
    planes = graph.node("PreviewAny", (810, 780), title="Screen plane per shot", size=(330, 150))
    graph.link(converge, "convergence", planes, "source")
    already_normalized = {"normalize": "none"}
    right = graph.node("SC3D_ForwardWarpStereo", (1180, 140), already_normalized, size=(330, 230))
    graph.link(components, "images", right, "image")
    graph.link(converge, "depth", right, "depth")
    filled = inpaint(graph, images, (right, "right"), (right, "occlusion"), (1550, 140))
    save_stereo_outputs(graph, images, (filled, "right"), 1930, 0, core_saver(graph, components))
    check = check_comfort(graph, images, (converge, "depth"), (components, "fps"), (1260, 620), already_normalized)
    comfort_previews(graph, check, 1650, 620)
    graph.save("auto_convergence")


LONG_VIDEO_STEPS = (
    "Stereo Convert Video streams the file: memory stays the same for a 10-second clip or a film, and the "
    "frames never become an IMAGE batch. Progress shows on the node; after Cancel (or a crash), Queue again "
    "to carry on from the last finished chunk (pieces wait in output/.stereo3d-work until the file is "
    "written; delete folders there from runs you gave up on).\n"
    "save_output is off here, so the node writes to ComfyUI's temp folder and Save Video keeps the result in "
    "output/stereo3d/ (copied as it is, no re-encoding). Turn it on to keep the node's own file in "
    "output/stereo3d/, named with the layout tag headset players read (e.g. _LR); then Save Video is optional.")


def convert_video(graph, pos, depth_video=None, depthcrafter=True, stereocrafter=True,
                  depth_loader=("SC3D_DepthCrafterModelLoader", "depthcrafter_model")):
    """Load Video (+ the optional depth video and model loaders) -> Stereo Convert Video -> Save Video.
    depth_loader: the depth model loader (node type, output) wired to 'depth_model' when `depthcrafter`."""
    video = graph.node("LoadVideo", pos, {"file": "input_video.mp4"}, title="Load Video (left eye)",
                       size=(320, 420))
    convert = graph.node("SC3D_StereoConvertVideo", (pos[0] + 460, pos[1]), {"save_output": False},
                         size=(420, 870))
    graph.link(video, "VIDEO", convert, "video")
    if depth_video:
        depth = graph.node("LoadVideo", (pos[0], pos[1] + 470), {"file": depth_video}, title="Load Video (depth)",
                           size=(320, 420))
        graph.link(depth, "VIDEO", convert, "depth_video")
    loaders = [(*depth_loader, "depth_model", depthcrafter),
               ("SC3D_StereoCrafterModelLoader", "stereocrafter_model", "stereocrafter_model", stereocrafter)]
    row = 0
    for node_type, output, input_name, wanted in loaders:
        if wanted:
            loader = graph.node(node_type, (pos[0] - 40, pos[1] + 470 + 230 * row), size=(400, 190))
            graph.link(loader, output, convert, input_name)
            row += 1
    save = graph.node("SaveVideo", (pos[0] + 920, pos[1]), {"filename_prefix": "stereo3d/sbs"}, size=(420, 500))
    graph.link(convert, "stereo", save, "video")


def long_video_full_pipeline():
    graph = Graph()
    graph.note(
        "Long videos: 2D to 3D in one node\n\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1, DepthCrafter and StereoCrafter.\n"
        "2. Load Video: your clip or film.\n"
        "3. Stereo Convert Video: max_disp sets the 3D strength (20 'reference' = the reference's look at any "
        "size), convergence the screen plane; depth_max_res 512-768 is much faster than 1024. Without the "
        "StereoCrafter loader the holes stay black (a fast preview); out of GPU memory? Raise tile_num, lower frames_chunk or depth_window.\n"
        "4. Queue. output/stereo3d/ gets the side-by-side video with the source's frame rate and audio.\n\n"
        + LONG_VIDEO_STEPS,
        (0, -420), size=(620, 400))
    convert_video(graph, (0, 0))
    graph.save("long_video_full_pipeline")


def long_video_bring_your_own_depth():
    graph = Graph()
    graph.note(
        "Long videos with your own depth video, in one node\n\n"
        "1. Load Video (left eye): your clip or film.\n"
        "2. Load Video (depth): a depth video of the same clip, one frame per frame (from another depth node "
        "pack, the depthcrafter_depth workflow or any tool; grey, white = near, any size). DepthCrafter is "
        "skipped, and no model is needed.\n"
        "3. Stereo Convert Video: max_disp sets the 3D strength, convergence the screen plane. Without a "
        "StereoCrafter model the right eye keeps black holes where the background was hidden; connect a "
        "StereoCrafter Model Loader to fill them.\n"
        "4. Queue. output/stereo3d/ gets the side-by-side video with the source's frame rate and audio.\n\n"
        + LONG_VIDEO_STEPS,
        (0, -420), size=(620, 400))
    convert_video(graph, (0, 0), depth_video="input_depth.mp4", depthcrafter=False, stereocrafter=False)
    graph.save("long_video_bring_your_own_depth")


def long_video_video_depth_anything():
    graph = Graph()
    graph.note(
        "Long videos with Video Depth Anything depth, in one node\n\n"
        f"1. {MODELS_STEP}: Video-Depth-Anything-Small (Apache-2.0; -Base and -Large are CC-BY-NC-4.0, "
        "non-commercial), stable-video-diffusion-img2vid-xt-1-1 and StereoCrafter.\n"
        "2. Load Video: your clip or film.\n"
        "3. Stereo Convert Video: its depth_model input takes the Video Depth Anything loader here (or the "
        "DepthCrafter or Depth Anything V2 loader). Video Depth Anything is far faster than DepthCrafter; its depth "
        "is min-max normalised over the whole video. depth_input_size 518 is what it was trained at (lower: faster, "
        "coarser). max_disp sets the 3D strength, convergence the screen plane.\n"
        "4. Queue. output/stereo3d/ gets the side-by-side video with the source's frame rate and audio.\n\n"
        + LONG_VIDEO_STEPS,
        (0, -420), size=(620, 400))
    convert_video(graph, (0, 0), depth_loader=("SC3D_VideoDepthAnythingModelLoader", "video_depth_anything_model"))
    graph.save("long_video_video_depth_anything")


def photo_3d():
    graph = Graph()
    graph.note(
        "A photo in 3D\n\n"
        f"1. {MODELS_STEP}: stable-video-diffusion-img2vid-xt-1-1, DepthCrafter and StereoCrafter.\n"
        "2. Load Image: your photo (its EXIF orientation is applied).\n"
        f"3. DepthCrafter Depth estimates its depth (one frame). {STRENGTH_STEP}\n"
        f"4. {INPAINT_STEP}\n"
        "5. Save Stereo Image: sbs, half-sbs or tb (PNG), anaglyph, mpo (both views in one file, for 3D cameras, "
        "3D TVs and stereo viewers) or jps (side by side, right eye first). Queue: output/stereo3d/ gets "
        "photo_00001_.png (or .mpo / .jps), numbered as Save Image numbers its files.",
        (0, -400), size=(600, 360))
    image = graph.node("LoadImage", (0, 0), {"image": "input_photo.png"}, size=(320, 420))
    images = (image, "IMAGE")
    filled = depth_warp_inpaint(graph, images)
    save = graph.node("SC3D_SaveStereoImage", (1560, 140), {"format": "sbs", "filename_prefix": "stereo3d/photo"},
                      size=(420, 400))
    graph.link(image, "IMAGE", save, "left")
    graph.link(filled, "right", save, "right")
    graph.save("photo_3d")


WORKFLOWS = (auto_convergence, bring_your_own_depth, comfort_check, depthcrafter_depth, full_pipeline,
             long_video_bring_your_own_depth, long_video_full_pipeline, long_video_video_depth_anything, photo_3d,
             stage1_splatting, stage2_inpainting, videohelpersuite_full_pipeline, video_depth_anything)

if __name__ == "__main__":
    for build in WORKFLOWS:
        build()
