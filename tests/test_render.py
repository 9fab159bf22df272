"""Tests for the iteration-graph renderers (unfoldc.graphs: text, JSON, DOT, Mermaid, pictures).

The graphs are built by hand following the schema in render's docstring, so these tests do not
depend on the graph builder.
"""

from __future__ import annotations

import json
import re
import stat
import xml.etree.ElementTree as ET

import networkx as nx
import pytest
from picture_checks import assert_edges_leave_and_enter_their_boxes_only

from unfoldc.graphs import draw, render
from unfoldc.graphs.layout import layout
from unfoldc.graphs.order import headline
from unfoldc.graphs.style import CARRY_COLOUR

SVG = "{http://www.w3.org/2000/svg}"


def _node(g, n, kind, label, shape="vector[n]", line=0, phase="layer", layer=None, **flags):
    g.add_node(
        n,
        kind=kind,
        label=label,
        shape=shape,
        line=line,
        phase=phase,
        layer=layer,
        hoisted=flags.get("hoisted", False),
        per_layer=flags.get("per_layer", False),
    )


def _data(g, *pairs):
    g.add_edges_from(pairs, kind="data")


def ista_rolled() -> nx.DiGraph:
    """ISTA before unrolling: the update feeds the residual and itself in the next layer."""
    g = nx.DiGraph(name="ista", num_layers=10, spec="ista.unf", unrolled=None)
    _node(g, "H", "given", "H : matrix[m, n]", "matrix[m, n]", 3, "setup")
    _node(g, "mu", "param", "mu = 0.1", "scalar", 5, "setup")
    _node(g, "rho", "train", "rho : scalar", "scalar", 6, "setup", per_layer=True)
    _node(g, "x", "input", "x : vector[m]", "vector[m]", 4, "prologue")
    _node(g, "s0", "state", "s = zeros(n)", "vector[n]", 8, "prologue")
    _node(g, "r", "temp", "r = H@s - x", "vector[m]", 10)
    _node(g, "s", "update", "s <- soft(s - mu*H.T@(H@s - x), mu*rho)", "vector[n]", 10)
    _node(g, "out", "output", "return s", "vector[n]", 12, "epilogue")
    _data(g, ("H", "r"), ("x", "r"), ("s0", "r"), ("s0", "s"), ("H", "s"), ("r", "s"))
    _data(g, ("mu", "s"), ("rho", "s"), ("s", "out"))
    g.add_edges_from([("s", "r"), ("s", "s")], kind="carry")
    return g


def ista_unrolled(k: int = 3) -> nx.DiGraph:
    """ISTA unrolled into ``k`` layers with hoisted Gram-matrix work in the prologue."""
    g = nx.DiGraph(name="ista", num_layers=k, spec="ista.unf", unrolled=k)
    _node(g, "H", "given", "H : matrix[m, n]", "matrix[m, n]", 3, "setup")
    _node(g, "x", "input", "x : vector[m]", "vector[m]", 4, "prologue")
    _node(g, "s@init", "state", "s = zeros(n)", "vector[n]", 8, "prologue")
    _node(g, "t0", "temp", "t0 = H.T@H", "matrix[n, n]", 10, "prologue", hoisted=True)
    _node(g, "t1", "temp", "t1 = H.T@x", "vector[n]", 10, "prologue", hoisted=True)
    _data(g, ("H", "t0"), ("H", "t1"), ("x", "t1"), ("s@init", "L0:s"))
    for i in range(k):
        _node(g, f"L{i}:rho", "train", f"rho[{i}]", "scalar", 6, layer=i, per_layer=True)
        label = f"s <- soft(s - (t0@s - t1), rho[{i}])"
        _node(g, f"L{i}:s", "update", label, "vector[n]", 10, layer=i)
        _data(g, ("t0", f"L{i}:s"), ("t1", f"L{i}:s"), (f"L{i}:rho", f"L{i}:s"))
        if i:
            g.add_edge(f"L{i - 1}:s", f"L{i}:s", kind="carry")
    _node(g, "out", "output", "return s", "vector[n]", 12, "epilogue")
    _data(g, (f"L{k - 1}:s", "out"))
    return g


def awkward() -> nx.DiGraph:
    """Ids and labels full of characters that every format treats specially."""
    g = nx.DiGraph(name='we"ird', num_layers=2, spec="a\\b.unf", unrolled=None)
    _node(g, 'a"b\\c', "given", 'a"b\\c : matrix[<m>, n] & #1', "matrix[m, n]", 1, "setup")
    _node(g, "s@0", "state", "s = 0", "scalar", 2, "prologue")
    _node(g, "s_0", "update", 's <- f(s, "q\\n") # {end}', "scalar", 3)
    _node(g, "end", "output", "return <s>", "scalar", 4, "epilogue")
    _data(g, ('a"b\\c', "s_0"), ("s@0", "s_0"), ("s_0", "end"))
    g.add_edge("s_0", "s_0", kind="carry")
    return g


GRAPHS = {"rolled": ista_rolled, "unrolled": ista_unrolled, "awkward": awkward}


@pytest.fixture(params=sorted(GRAPHS))
def graph(request) -> nx.DiGraph:
    return GRAPHS[request.param]()


@pytest.fixture
def no_dot(monkeypatch):
    """Hides Graphviz so networkx and matplotlib draw the pictures."""
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)


def _carries(g):
    return [(u, v) for u, v, k in g.edges(data="kind") if k == "carry"]


# --- dispatcher and determinism ----------------------------------------------------------------


def test_render_dispatches_every_format(no_dot):
    g = ista_rolled()
    for fmt in render.FORMATS:
        out = render.render(g, fmt)
        assert isinstance(out, bytes if fmt == "png" else str), fmt


def test_render_rejects_unknown_format_naming_the_choices():
    with pytest.raises(ValueError, match="expected one of text, json"):
        render.render(ista_rolled(), "pdf")


@pytest.mark.parametrize("fmt", render.FORMATS)
def test_output_is_deterministic_and_ignores_insertion_order(no_dot, fmt):
    g = ista_unrolled()
    shuffled = nx.DiGraph(**g.graph)
    shuffled.add_nodes_from(reversed(list(g.nodes(data=True))))
    shuffled.add_edges_from(reversed(list(g.edges(data=True))))
    first = render.render(g, fmt)
    assert render.render(g, fmt) == first
    assert render.render(shuffled, fmt) == first


# --- text --------------------------------------------------------------------------------------


def test_text_groups_by_phase_in_statement_order():
    text = render.to_text(ista_rolled())
    titles = [line for line in text.splitlines() if line.endswith(":")]
    assert [t.split()[0] for t in titles] == ["setup", "prologue", "layer", "epilogue"]
    assert "layer body (x10):" in titles
    body = text.splitlines()
    assert _row(body, "r") < _row(body, "s")  # the residual is computed before the update


def test_text_row_shows_kind_label_shape_line_and_inputs():
    text = render.to_text(ista_rolled())
    row = next(line for line in text.splitlines() if line.lstrip().startswith("s "))
    for part in ("update", "s <- soft(", "vector[n]", ":10", "<- H, mu, r, rho, s (carried), s0"):
        assert part in row


def test_text_marks_hoisted_and_per_layer_and_lists_layers():
    text = render.to_text(ista_unrolled())
    assert re.search(r"^  t0 .*<- H  \[hoisted\]$", text, re.M)
    assert re.search(r"^  L1:rho .*\[per-layer\]$", text, re.M)
    assert [line for line in text.splitlines() if line.startswith("layer")] == [
        "layer 0:",
        "layer 1:",
        "layer 2:",
    ]
    assert "L0:s (carried)" in text
    assert text.startswith("ista (ista.unf): unrolled into 3 layers\n")


def _row(lines, node):
    return next(i for i, line in enumerate(lines) if line.split()[:1] == [node])


# --- JSON --------------------------------------------------------------------------------------


def test_json_round_trips_to_an_equal_graph(graph):
    data = json.loads(render.to_json(graph))
    assert "links" in data
    back = nx.node_link_graph(data, edges="links")
    assert back.is_directed() and not back.is_multigraph()
    assert nx.is_isomorphic(back, graph, node_match=dict.__eq__, edge_match=dict.__eq__)
    assert nx.utils.graphs_equal(back, graph)
    assert back.graph == graph.graph


def test_json_is_sorted_and_indented():
    text = render.to_json(ista_rolled())
    data = json.loads(text)
    assert [n["id"] for n in data["nodes"]] == sorted(n["id"] for n in data["nodes"])
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"


# --- DOT ---------------------------------------------------------------------------------------


def _dot_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_dot_has_every_node_and_edge_and_dashes_carries(graph):
    dot = render.to_dot(graph)
    for n in graph:
        assert re.search(rf"^    {re.escape(_dot_quote(n))} \[label=<", dot, re.M), n
    for u, v, kind in graph.edges(data="kind"):
        line = next(
            x for x in dot.splitlines() if x.startswith(f"  {_dot_quote(u)} -> {_dot_quote(v)}")
        )
        assert ("style=dashed" in line) == (kind == "carry")
    assert dot.count(" -> ") == graph.number_of_edges()
    _assert_dot_well_formed(dot)


def test_dot_clusters_per_phase_and_per_layer_when_unrolled():
    rolled = re.findall(r"subgraph (cluster_\w+)", render.to_dot(ista_rolled()))
    assert rolled == [
        "cluster_0_setup",
        "cluster_1_prologue",
        "cluster_2_layer",
        "cluster_3_epilogue",
    ]
    unrolled = re.findall(r"subgraph (cluster_\w+)", render.to_dot(ista_unrolled()))
    assert [c for c in unrolled if "_layer_" in c] == [
        "cluster_2_layer_0",
        "cluster_3_layer_1",
        "cluster_4_layer_2",
    ]


def test_dot_carries_do_not_constrain_ranks_only_in_rolled_graphs():
    assert "constraint=false" in render.to_dot(ista_rolled())
    assert "constraint=false" not in render.to_dot(ista_unrolled())


def test_dot_carries_name_their_state_and_leave_it_east_when_rolled():
    edges = [x for x in render.to_dot(ista_rolled()).splitlines() if " -> " in x]
    carries = [x for x in edges if "style=dashed" in x]
    assert len(carries) == 2
    assert all('edgetooltip="carry s"' in x and "tailport=e, headport=e" in x for x in carries)
    assert sum('taillabel="carry s"' in x for x in carries) == 1  # one label per state
    unrolled = [x for x in render.to_dot(ista_unrolled()).splitlines() if "dashed" in x]
    assert all("taillabel" in x and "tailport" not in x for x in unrolled)


def test_dot_escapes_quotes_backslashes_and_angle_brackets():
    dot = render.to_dot(awkward())
    assert 'digraph "we\\"ird" {' in dot
    assert '"a\\"b\\\\c" [label=<a&quot;b\\c : matrix[&lt;m&gt;, n] &amp; #1<BR/>' in dot
    assert "s &lt;- f(s, &quot;q\\n&quot;) # {end}<BR/>" in dot
    assert "<s>" not in dot


def _assert_dot_well_formed(dot: str) -> None:
    """Quoted strings close, HTML labels nest, and braces balance outside both."""
    depth, i = 0, 0
    while i < len(dot):
        c = dot[i]
        if c == '"':
            i += 1
            while dot[i] != '"':
                i += 2 if dot[i] == "\\" else 1
        elif c == "<":
            nesting = 1
            while nesting:
                i += 1
                nesting += {"<": 1, ">": -1}.get(dot[i], 0)
        elif c in "{}":
            depth += 1 if c == "{" else -1
            assert depth >= 0
        i += 1
    assert depth == 0


# --- Mermaid -----------------------------------------------------------------------------------

_MERMAID_NODE = re.compile(r'^    (n_\w+)[\[\(\{>/]+"([^"]*)"[\]\)\}/]+$')


def test_mermaid_has_every_node_and_edge_and_dots_carries(graph):
    text = render.to_mermaid(graph)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    ids = [m.group(1) for m in map(_MERMAID_NODE.match, lines) if m]
    assert len(ids) == len(set(ids)) == graph.number_of_nodes()
    assert sum(" -.->|\"carry " in x for x in lines) == len(_carries(graph))
    assert sum(" --> " in x for x in lines) == graph.number_of_edges() - len(_carries(graph))
    assert sum(x.lstrip().startswith("subgraph ") for x in lines) == lines.count("  end")


def test_mermaid_sanitizes_ids_and_escapes_labels():
    text = render.to_mermaid(awkward())
    # `s@0` and `s_0` both sanitize to `s_0`; `s@0` sorts first and keeps the plain id.
    assert 'n_s_0_2 -.->|"carry s"| n_s_0_2' in text
    assert "n_s_0 --> n_s_0_2" in text
    ids = re.findall(r"^    (n_\w+)", text, re.M)
    assert sorted(ids) == ["n_a_b_c", "n_end", "n_s_0", "n_s_0_2"]
    assert "a#quot;b\\c : matrix[#lt;m#gt;, n] #amp; #35;1" in text
    assert "s #lt;- f(s, #quot;q\\n#quot;) #35; {end}" in text


def test_mermaid_colours_carry_links_by_index():
    text = render.to_mermaid(ista_rolled())
    edges = [x for x in text.splitlines() if " --> " in x or " -.->" in x]
    carried = [str(i) for i, x in enumerate(edges) if "-.->" in x]
    assert f"  linkStyle {','.join(carried)} stroke:{CARRY_COLOUR}" in text


def test_mermaid_carries_name_the_state_they_carry():
    lines = render.to_mermaid(ista_rolled()).splitlines()
    assert '  n_s -.->|"carry s"| n_r' in lines
    assert '  n_s -.->|"carry s"| n_s' in lines


# --- SVG and PNG -------------------------------------------------------------------------------


def test_svg_without_graphviz_is_xml_with_every_label_and_carry(no_dot, graph):
    svg = draw.to_svg(graph)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert headline(graph) in texts
    drawing = layout(graph)
    for box in drawing.boxes.values():
        assert set(box.lines) <= set(texts), box.node
    assert {c.label for c in drawing.carries} <= set(texts)
    assert "Date" not in svg and "<dc:date>" not in svg


def test_svg_without_graphviz_is_the_same_bytes_every_run(no_dot):
    # matplotlib salts its SVG ids with a fresh uuid on every save unless svg.hashsalt is set
    g = ista_unrolled()
    assert draw.to_svg(g) == draw.to_svg(g)
    assert draw.to_svg(awkward()) == draw.to_svg(awkward())


def test_layout_rows_do_not_overlap_and_data_flows_down(graph):
    drawing = layout(graph)
    boxes = list(drawing.boxes.values())
    assert len(boxes) == graph.number_of_nodes()
    for a in boxes:
        for b in boxes:
            if a is not b:
                apart_x = abs(a.x - b.x) >= (a.w + b.w) / 2
                assert apart_x or a.bottom <= b.y or b.bottom <= a.y, (a.node, b.node)
    for route in drawing.data:
        ys = [y for _, y in route.points]
        assert ys == sorted(ys), route
    assert len(drawing.data) + len(drawing.carries) == graph.number_of_edges()


def test_layout_edges_cross_no_box(graph):
    assert_edges_leave_and_enter_their_boxes_only(layout(graph))


def many_states(k: int = 12) -> nx.DiGraph:
    """``k`` states updated side by side, each from all the others: more carries than fit
    ``_CHANNEL_STEP`` apart in the gap between two rows."""
    g = nx.DiGraph(name="many", num_layers=3, spec="many.unf", unrolled=None)
    for i in range(k):
        _node(g, f"init:s{i}", "state", f"s{i} = 0", "scalar", 2, "prologue")
        _node(g, f"{i}:s{i}", "update", f"s{i} <- f(s)", "scalar", 5)
        _data(g, (f"init:s{i}", f"{i}:s{i}"))
    for i in range(k):
        g.add_edges_from(((f"{i}:s{i}", f"{j}:s{j}") for j in range(k)), kind="carry")
    _node(g, "out", "output", "return s0", "scalar", 9, "epilogue")
    _data(g, ("0:s0", "out"))
    return g


def test_many_carries_stay_in_the_gaps():
    drawing = layout(many_states())
    assert len(drawing.carries) == 144
    assert_edges_leave_and_enter_their_boxes_only(drawing)


def test_rolled_carries_go_round_the_right_and_come_back_down():
    drawing = layout(ista_rolled())
    right = max(b.x + b.w / 2 for b in drawing.boxes.values())
    carries = {(c.src, c.dst): c for c in drawing.carries}
    assert set(carries) == {("s", "r"), ("s", "s")}
    for c in carries.values():
        assert c.label == "carry s"
        assert max(x for x, _ in c.points) > right  # the lane right of every box
        assert c.points[-2][1] < c.points[-1][1]  # it enters its reader from above


def test_picture_is_wide_enough_for_its_title_legend_and_text():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from unfoldc.graphs.paint import figure

    g = nx.DiGraph(name="t", num_layers=1, spec="t.unf", unrolled=None)
    kinds = ("given", "input", "param", "train", "net", "let", "state", "temp", "update")
    for kind in kinds:  # a chain of one-letter boxes: a narrow picture with a long legend
        _node(g, kind, kind, kind[0], "", 0, "setup")
    _data(g, *zip(kinds, kinds[1:]))
    g.add_edge("update", "update", kind="carry")
    fig = figure(layout(g))
    renderer = FigureCanvasAgg(fig).get_renderer()
    texts = [*fig.axes[0].texts, fig.axes[0].get_legend()]
    assert max(t.get_window_extent(renderer).x1 for t in texts) <= fig.bbox.x1


def test_dollar_signs_in_labels_are_text_not_mathtext(no_dot):
    g = nx.DiGraph(name="$a", num_layers=1, spec="t.unf", unrolled=None)
    _node(g, "c", "let", "c = $\\frac{$ & 1", "scalar", 1, "setup")
    root = ET.fromstring(draw.to_svg(g).encode("utf-8"))
    assert "c = $\\frac{$ & 1" in [t.text for t in root.iter(f"{SVG}text")]


def test_png_without_graphviz_is_written(no_dot, tmp_path):
    path = tmp_path / "g.png"
    draw.to_png(awkward(), path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def _fake_dot(tmp_path):
    """A stand-in `dot` that saves its input and echoes its arguments inside an SVG."""
    script = tmp_path / "dot"
    script.write_text(
        "#!/bin/sh\n"
        f'cat > "{tmp_path}/input.dot"\n'
        'printf \'<svg xmlns="http://www.w3.org/2000/svg"><desc>%s</desc></svg>\' "$*"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_svg_goes_through_dot_when_it_is_installed(monkeypatch, tmp_path):
    script = _fake_dot(tmp_path)
    monkeypatch.setattr(draw.shutil, "which", lambda name: str(script))
    g = ista_rolled()
    assert "<desc>-Tsvg</desc>" in draw.to_svg(g)
    assert (tmp_path / "input.dot").read_text() == render.to_dot(g)
    assert b"<desc>-Tpng</desc>" in draw.png_bytes(g)


def test_failing_dot_is_an_internal_error(monkeypatch, tmp_path):
    script = tmp_path / "dot"
    script.write_text("#!/bin/sh\necho 'syntax error in line 3' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(draw.shutil, "which", lambda name: str(script))
    with pytest.raises(RuntimeError, match="internal error: `dot -Tsvg`.*line 3"):
        draw.to_svg(ista_rolled())
