"""Checks on a laid-out picture (unfoldc.graphs.layout.Drawing), shared by the graph tests."""

from __future__ import annotations


def _inside(point, box, margin=0.5) -> bool:
    x, y = point
    return (box.x - box.w / 2 + margin < x < box.x + box.w / 2 - margin
            and box.y + margin < y < box.bottom - margin)


def crossed_boxes(drawing, route, samples=40):
    """The boxes a route's polyline passes through, sampled along every segment."""
    hit = set()
    for (x0, y0), (x1, y1) in zip(route.points, route.points[1:]):
        for i in range(samples + 1):
            t = i / samples
            point = (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
            hit |= {b.node for b in drawing.boxes.values() if _inside(point, b)}
    return hit


def assert_edges_leave_and_enter_their_boxes_only(drawing):
    """Every route starts on its tail's box, ends on its head's, and crosses no box at all.

    A route hidden behind a box seems to start there (issue 15: ADMM's carries seemed to start
    at `rho` and `output z`), so no route may pass through any box, its own included.
    """
    boxes = drawing.boxes
    for route in (*drawing.data, *drawing.carries):
        src, dst = boxes[route.src], boxes[route.dst]
        (x0, y0), (x1, y1) = route.points[0], route.points[-1]
        assert y0 == src.bottom and abs(x0 - src.x) <= src.w / 2, route
        assert y1 == dst.y and abs(x1 - dst.x) <= dst.w / 2, route
        assert not crossed_boxes(drawing, route), route
