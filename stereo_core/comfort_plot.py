"""The comfort report's chart, drawn with Pillow (already installed with ComfyUI and diffusers).

One line chart does not justify matplotlib (a large extra dependency for every install); this
draws the comfort band, the limits, the screen plane, the nearest/median/farthest curves and
the frames beyond the limits. Long clips are drawn as an envelope per pixel column (the
nearest curve takes the column's maximum, the farthest its minimum), so a one-frame spike is
never lost between pixels.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_BACKGROUND = (255, 255, 255)
_COMFORT_BAND = (226, 244, 226)
_OUTSIDE = (250, 232, 232)
_GRID = (225, 225, 225)
_AXIS = (90, 90, 90)
_LIMIT = (200, 40, 40)
_SERIES = {"nearest": ((230, 120, 20), "nearest (in front)"), "median": ((40, 90, 200), "median"),
           "farthest": ((120, 50, 160), "farthest (behind)")}
_MARGINS = (80, 56, 96, 64)  # left, top, right, bottom


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _nice_step(span: float, target_ticks: int = 8) -> float:
    raw = span / max(1, target_ticks)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= raw)


def _columns(x: np.ndarray, values: dict[str, np.ndarray], width: int):
    """Per pixel column: nearest max, median mean, farthest min, beyond any (columns with frames only)."""
    column = np.clip(x.astype(np.int64), 0, width - 1)
    used = np.unique(column)
    out = {"x": used.astype(np.float64)}
    for name, reduce in (("nearest", np.maximum), ("farthest", np.minimum)):
        grouped = np.full(width, -np.inf if name == "nearest" else np.inf)
        reduce.at(grouped, column, values[name])
        out[name] = grouped[used]
    sums = np.zeros(width)
    counts = np.zeros(width)
    np.add.at(sums, column, values["median"])
    np.add.at(counts, column, 1)
    out["median"] = sums[used] / counts[used]
    beyond = np.zeros(width, dtype=bool)
    np.logical_or.at(beyond, column, values["beyond"])
    out["beyond"] = beyond[used]
    return out


def draw_report(report, size: tuple[int, int] = (1200, 520)) -> Image.Image:
    table = report.table()
    limits = report.limits
    width, height = size
    left, top, right, bottom = _MARGINS
    plot_w, plot_h = width - left - right, height - top - bottom
    image = Image.new("RGB", size, _BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, normal = _font(12), _font(14)

    nearest, farthest = table["nearest"], table["farthest"]
    high = max(limits.front * 1.3, float(nearest.max()) * 1.08, 0.1)
    low = min(-limits.behind * 1.3, float(farthest.min()) * 1.08, -0.1)
    to_y = lambda value: top + (high - value) / (high - low) * plot_h
    frames = table["frame"]
    first, last = int(frames[0]), int(frames[-1])
    span = max(1, last - first)
    to_x = lambda frame: left + (frame - first) / span * (plot_w - 1)

    # Comfort band inside the limits, tinted outside.
    draw.rectangle([left, top, left + plot_w, top + plot_h], fill=_OUTSIDE)
    draw.rectangle([left, to_y(limits.front), left + plot_w, to_y(-limits.behind)], fill=_COMFORT_BAND)

    # Horizontal grid with % on the left and pixels on the report's screen on the right.
    step = _nice_step(high - low)
    tick = math.ceil(low / step) * step
    while tick <= high + 1e-9:
        y = to_y(tick)
        draw.line([left, y, left + plot_w, y], fill=_GRID)
        percent, pixels = (0.0, 0.0) if abs(tick) < 1e-9 else (tick, report.pixels(tick))
        draw.text((left - 8, y), f"{percent:+.2g}%".replace("+0%", "0%"), fill=_AXIS, font=small, anchor="rm")
        draw.text((left + plot_w + 8, y), f"{pixels:+.0f} px".replace("+0 px", "0 px"), fill=_AXIS, font=small,
                  anchor="lm")
        tick += step
    # Time axis: seconds when the frame rate is known.
    unit = report.fps or 1.0
    x_step = _nice_step((last - first) / unit if last > first else 1.0, 10)
    value = math.ceil(first / unit / x_step) * x_step
    while value * unit <= last + 1e-9:
        x = to_x(value * unit)
        draw.line([x, top, x, top + plot_h], fill=_GRID)
        draw.text((x, top + plot_h + 6), f"{value:g}", fill=_AXIS, font=small, anchor="mt")
        value += x_step
    draw.text((left + plot_w / 2, height - 22), "seconds" if report.fps else "frame", fill=_AXIS, font=normal,
              anchor="mm")
    draw.text((width - 6, top + plot_h + 6), f"px on a {report.screen_width_px} px", fill=_AXIS, font=small,
              anchor="rt")
    draw.text((width - 6, top + plot_h + 22), "wide screen", fill=_AXIS, font=small, anchor="rt")

    # Screen plane and limits.
    draw.line([left, to_y(0), left + plot_w, to_y(0)], fill=_AXIS, width=1)
    draw.text((left + 6, to_y(0) - 3), "screen plane", fill=_AXIS, font=small, anchor="ls")
    for value, label in ((limits.front, f"in front limit {limits.front:+.2g}%"),
                         (-limits.behind, f"behind limit {-limits.behind:+.2g}%")):
        y = to_y(value)
        for x in range(left, left + plot_w, 12):
            draw.line([x, y, min(x + 7, left + plot_w), y], fill=_LIMIT, width=2)
        draw.text((left + plot_w - 6, y - 4), label, fill=_LIMIT, font=small, anchor="rs")

    # The curves (an envelope per pixel column when there are more frames than pixels).
    x = np.array([to_x(frame) for frame in frames])
    if len(frames) > plot_w:
        data = _columns(x - left, table, plot_w)
        x, series, beyond = data["x"] + left, data, data["beyond"]
    else:
        series, beyond = table, table["beyond"]
    for name, (colour, _) in _SERIES.items():
        points = [(float(px), float(to_y(value))) for px, value in zip(x, series[name])]
        if len(points) == 1:
            draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour)
        else:
            draw.line(points, fill=colour, width=2)
    for px in x[np.asarray(beyond, dtype=bool)]:
        draw.rectangle([px - 1, top + plot_h - 6, px + 1, top + plot_h], fill=_LIMIT)
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=_AXIS)

    # Title, legend and the count of frames beyond the limits.
    draw.text((left, 8), "Stereo comfort: disparity over time (% of frame width, + = in front of the screen)",
              fill=(20, 20, 20), font=normal)
    legend_x = left
    for name, (colour, label) in _SERIES.items():
        draw.line([legend_x, 38, legend_x + 22, 38], fill=colour, width=3)
        draw.text((legend_x + 28, 38), label, fill=(40, 40, 40), font=small, anchor="lm")
        legend_x += 42 + int(draw.textlength(label, font=small))
    count, total = int(np.sum(table["beyond"])), len(frames)
    status = (f"{count} of {total} frames beyond the limits" if count else f"all {total} frames within the limits")
    draw.text((left + plot_w, 38), status, fill=_LIMIT if count else (30, 130, 30), font=normal, anchor="rm")
    return image
