"""Shipped workflows match the nodes they use: types exist, links fit, widget values fit.

Core and VideoHelperSuite node definitions come from a committed /object_info snapshot
of a real ComfyUI 0.8.0 + VHS 1.7.9 (tests/data); ours from NODE_CLASS_MAPPINGS.
"""

import json
from pathlib import Path

import pytest

from build_workflows_import import WORKFLOWS as BUILDERS
from build_workflows_import import FRONTEND_ONLY, builder, definition, optional_inputs, read_widgets

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))


def _vhs_format_widgets():
    """{format: {widget: (kind, options)}} of the extra widgets VHS Video Combine shows per format."""
    formats = definition_options("VHS_VideoCombine", "format")["formats"]
    table = {}
    for name, extras in formats.items():
        table[name] = {}
        for extra in extras:
            kind, options = extra[1], extra[2] if len(extra) > 2 and isinstance(extra[2], dict) else {}
            if isinstance(kind, list):
                kind, options = "COMBO", {**options, "options": kind}
            table[name][extra[0]] = (kind, options)
    return table


def definition_options(node_type, input_name):
    inputs, _ = definition(node_type)
    return next(options for name, _, options, _ in inputs if name == input_name)


VHS_FORMAT_WIDGETS = _vhs_format_widgets()


def test_every_workflow_the_builder_makes_is_shipped_and_up_to_date(tmp_path, monkeypatch, capsys):
    assert [path.stem for path in WORKFLOWS] == sorted(build.__name__ for build in BUILDERS)
    monkeypatch.setattr(builder, "OUTPUT_DIR", tmp_path)
    for build in BUILDERS:
        build()
        shipped = ROOT / "workflows" / f"{build.__name__}.json"
        assert (tmp_path / shipped.name).read_text() == shipped.read_text(), (
            f"{shipped.name} is stale: run tools/build_workflows.py")


def check_value(node, name, kind, options, value):
    if kind == "COMBO" and options["options"]:  # an empty list is a file picker, filled from input/ at run time
        assert value in options["options"], f"{node['type']}.{name}={value!r} not an option"
    if kind in ("INT", "FLOAT"):
        assert options.get("min", value) <= value <= options.get("max", value), f"{node['type']}.{name}"
    if kind == "BOOLEAN":
        assert isinstance(value, bool)


def check_widgets(node, widgets):
    values, extras = read_widgets(node)  # raises when values and widgets do not line up
    for name, kind, options in widgets:
        check_value(node, name, kind, options, values[name])
    format_widgets = {}
    if node["type"] == "VHS_VideoCombine":
        format_widgets = VHS_FORMAT_WIDGETS[values["format"]]
    for name, value in extras.items():
        assert name == "videopreview" or name in format_widgets, f"{node['type']} has an unknown widget {name}"
        if name in format_widgets:
            check_value(node, name, *format_widgets[name], value)


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
        check_widgets(node, widgets)

    for link_id, src, src_slot, dst, dst_slot, kind in graph["links"]:
        src_node, dst_node = nodes[src], nodes[dst]
        _, outputs = definitions[src]
        inputs, _ = definitions[dst]
        out_type = outputs[src_slot][1]
        input_name = dst_node["inputs"][dst_slot]["name"]
        in_type = next(k for n, k, _, _ in inputs if n == input_name)
        # A '*' input (Preview as Text) takes any type; the frontend then names the link by the output's type.
        # "A,B" is ComfyUI's union of types (an input any of them may connect to).
        assert out_type == kind and (in_type == "*" or out_type in in_type.split(",")), (
            f"{path.name}: link {link_id} {out_type} -> {input_name} ({in_type})")
        assert link_id in src_node["outputs"][src_slot]["links"]
        assert dst_node["inputs"][dst_slot]["link"] == link_id

    for node_id, (inputs, _) in definitions.items():
        node = nodes[node_id]
        linked = {entry["name"] for entry in node["inputs"] if entry.get("link") is not None}
        required = [name for name, kind, _, is_widget in inputs if not is_widget]
        missing = [name for name in required if name not in linked and name not in optional_inputs(node["type"])]
        assert not missing, f"{path.name}: {node['type']} has unconnected inputs {missing}"

