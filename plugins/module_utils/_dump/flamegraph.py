# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Folded stacks -> a flame graph a person can open: one self-contained HTML page, drawn by Plotly.

Plotly's icicle trace lays out and draws the graph (root at the bottom, callers below callees, width
proportional to the number of tasks; click a frame to zoom in, hover for counts). The page embeds
plotly.js, so it opens offline in any browser. Plotly is an optional controller-side dependency:
:func:`missing` says why a graph cannot be drawn, and callers write the folded stacks regardless.

Input lines are the folded-stack format flame graph tools read: ``frame;frame;...;frame count``,
outermost frame first (``stack_groups.folded_lines`` writes them).
"""

from __future__ import annotations

import hashlib
import html

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import printable

try:
    from importlib.util import find_spec as _find_spec
    _IMPORT_ERROR = None if _find_spec("plotly") is not None else ImportError("No module named 'plotly'")
except (ImportError, ValueError) as exc:  # pragma: no cover - depends on the controller
    _IMPORT_ERROR = exc

ROOT = "all"
REQUIREMENT = "plotly"


class FlameGraphError(ValueError):
    """Input that is not folded stacks, or no Plotly to draw with."""


def missing():
    """Why no flame graph can be drawn on this controller ('' when it can)."""
    if _IMPORT_ERROR is None:
        return ""
    return ("no flame graph drawn: the Python package %r is not installed for the Python that runs "
            "ansible-playbook (%s); install it with `pip install %s` (see requirements.txt), "
            "or open stacks.folded with any flame graph tool" % (REQUIREMENT, _IMPORT_ERROR, REQUIREMENT))


def parse_folded(lines):
    """Folded lines (a list, or one string) -> ``[(frames tuple, count)]``; bad lines raise."""
    if lines is None:
        return []
    if isinstance(lines, str):
        lines = lines.splitlines()
    stacks = []
    for number, line in enumerate(lines, 1):
        line = str(line).strip()
        if not line:
            continue
        stack, count = line.rsplit(" ", 1) if " " in line else ("", line)
        try:
            value = int(count)
        except ValueError:
            raise FlameGraphError("line %d is not 'frame;frame;... count': %r" % (number, line[:120])) from None
        if not stack or value < 0:
            raise FlameGraphError("line %d is not 'frame;frame;... count': %r" % (number, line[:120]))
        stacks.append((tuple(stack.split(";")), value))
    return stacks


def tree(stacks):
    """``[(frames, count)]`` -> icicle columns: ids, labels, parents, values (totals), depth per node.

    The root (id and label ``ROOT``) holds every count; a node's value is the total of the stacks through it, so
    Plotly's ``branchvalues='total'`` draws children inside their parent. Nodes are numbered as they are first
    seen: ``n1``, ``n2``... An id made of the node's path would make the page grow with the square of the
    stack depth (one task of 4,000 frames: a 100 MB page); a number also never equals the root's id, which a
    frame may spell (a process may name itself ``all``) and which would leave plotly.js nothing to draw.
    """
    ids, labels, parents, values, depths = [ROOT], [ROOT], [""], [0], [0]
    children = {}           # (parent node, label) -> node; nodes are indexes into the columns
    for frames, count in stacks:
        values[0] += count
        node = 0
        for label in frames:
            child = children.get((node, label))
            if child is None:
                child = children[node, label] = len(ids)
                ids.append("n%d" % child)
                labels.append(label)
                parents.append(ids[node])
                values.append(0)
                depths.append(depths[node] + 1)
            values[child] += count
            node = child
    return {"ids": ids, "labels": labels, "parents": parents, "values": values, "depths": depths}


def _colour(name):
    """A warm colour per frame name, stable from run to run (the classic flame graph palette)."""
    digest = hashlib.md5(name.encode("utf-8", "replace")).digest()  # nosec - a colour, not security
    red = 205 + digest[0] % 50
    green = digest[1] % 230
    blue = digest[2] % 55
    return "rgb(%d,%d,%d)" % (red, green, blue)


def plotly_text(text):
    """``text`` shown literally by Plotly, whose labels render a subset of HTML (``<b>``, ``<a href>``, ``<br>``)
    and its entities: every ``&``, ``<``, ``>`` and quote becomes an entity, which Plotly shows as the character."""
    return html.escape(printable(text), quote=True)


def render_html(lines, title="Flame graph", subtitle=""):
    """Folded lines -> a complete, self-contained HTML page with the flame graph."""
    reason = missing()
    if reason:
        raise FlameGraphError(reason)
    stacks = parse_folded(lines)
    columns = tree(stacks)
    colours = ["rgb(200,200,200)"] + [_colour(label) for label in columns["labels"][1:]]
    # A plain figure dict, drawn by plotly.io without Plotly's figure classes: building a graph_objects Figure
    # (and its layout template) imports and validates hundreds of classes, about a second of every report.
    trace = {
        "type": "icicle", "ids": columns["ids"], "labels": [plotly_text(label) for label in columns["labels"]],
        "parents": columns["parents"], "values": columns["values"],
        "branchvalues": "total", "sort": False, "tiling": {"orientation": "v", "flip": "y"},
        "marker": {"colors": colours, "line": {"width": 0.5, "color": "white"}},
        "hovertemplate": "<b>%{label}</b><br>%{value} task(s), %{percentRoot:.1%} of all<extra></extra>",
        "textfont": {"family": "monospace"}, "insidetextfont": {"size": 11},
    }
    depth = max(columns["depths"]) if stacks else 1
    heading = html.escape(str(title))
    if subtitle:
        heading += "<br><sup>%s</sup>" % html.escape(str(subtitle))
    layout = {"title": {"text": heading, "x": 0.01}, "margin": {"t": 70, "l": 10, "r": 10, "b": 10},
              "height": max(400, min(4000, 110 + 24 * (depth + 1))),
              "paper_bgcolor": "white", "plot_bgcolor": "white", "font": {"color": "#2a3f5f"}}
    if not stacks:
        layout["annotations"] = [{"text": "No stacks in this dump", "showarrow": False, "font": {"size": 16},
                                  "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}]
    # plotly is imported only when a graph is drawn
    import plotly.io as pio  # pylint: disable=import-outside-toplevel
    return pio.to_html({"data": [trace], "layout": layout}, validate=False, full_html=True, include_plotlyjs=True,
                       config={"displaylogo": False, "responsive": True})
