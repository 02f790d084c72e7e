"""Shipped workflows match the nodes they use: types exist, links fit, widget values fit.

Core and VideoHelperSuite node definitions come from a committed /object_info snapshot
of a real ComfyUI 0.8.0 + VHS 1.7.9 (tests/data); ours from NODE_CLASS_MAPPINGS.
"""

import json
from pathlib import Path

import pytest

from build_workflows_import import definition, has_seed_control, optional_inputs

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def test_there_are_workflows():
    assert any(path.stem == "bring_your_own_depth" for path in WORKFLOWS)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_matches_node_definitions(path):
    graph = json.loads(path.read_text())
    nodes = {node["id"]: node for node in graph["nodes"]}
    definitions = {}
    for node in graph["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        inputs, outputs = definition(node["type"])  # raises KeyError for an unknown type
        definitions[node["id"]] = (inputs, outputs)
        widgets = [(name, kind, options) for name, kind, options, is_widget in inputs if is_widget]
        values = list(node["widgets_values"])
        for name, kind, options in widgets:
            assert values, f"{path.name}: {node['type']} lacks a value for widget {name}"
            value = values.pop(0)
            if options.get("video_upload") or options.get("image_upload"):
                assert values.pop(0) == "image"  # the upload button
                continue
            if has_seed_control(name, options):
                assert values.pop(0) in ("fixed", "increment", "decrement", "randomize")
            if kind == "COMBO":
                assert value in options["options"], f"{node['type']}.{name}={value!r} not an option"
            if kind in ("INT", "FLOAT"):
                assert options.get("min", value) <= value <= options.get("max", value), f"{node['type']}.{name}"
            if kind == "BOOLEAN":
                assert isinstance(value, bool)
        assert not values, f"{path.name}: {node['type']} has extra widget values {values}"

    for link_id, src, src_slot, dst, dst_slot, kind in graph["links"]:
        src_node, dst_node = nodes[src], nodes[dst]
        _, outputs = definitions[src]
        inputs, _ = definitions[dst]
        out_type = outputs[src_slot][1]
        input_name = dst_node["inputs"][dst_slot]["name"]
        in_type = next(k for n, k, _, _ in inputs if n == input_name)
        assert out_type == in_type == kind, f"{path.name}: link {link_id} {out_type} -> {input_name} ({in_type})"
        assert link_id in src_node["outputs"][src_slot]["links"]
        assert dst_node["inputs"][dst_slot]["link"] == link_id

    for node_id, (inputs, _) in definitions.items():
        node = nodes[node_id]
        linked = {entry["name"] for entry in node["inputs"] if entry.get("link") is not None}
        required = [name for name, kind, _, is_widget in inputs if not is_widget]
        missing = [name for name in required if name not in linked and name not in optional_inputs(node["type"])]
        assert not missing, f"{path.name}: {node['type']} has unconnected inputs {missing}"

