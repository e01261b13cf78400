"""A tiny pure-Python line chart written as a PNG (zlib + struct only).

Canvas of RGB pixels, lines (Bresenham, a few pixels thick), axes with
ticks, tick labels, a title and a legend (coloured boxes + short labels),
all text drawn with a built-in 5x7 bitmap font (upper case, digits and a
little punctuation; lower case is drawn as upper case).
"""
import math
import struct
import zlib

# 5x7 glyphs, one string of 5 characters per row, '#' = ink
_FONT_ROWS = {
    "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
    "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
    "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
    "B": ["####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."],
    "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
    "D": ["###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."],
    "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
    "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
    "G": [".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"],
    "H": ["#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
    "I": [".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "J": ["..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."],
    "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
    "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
    "M": ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
    "N": ["#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"],
    "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
    "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
    "Q": [".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"],
    "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
    "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
    "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
    "U": ["#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
    "V": ["#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
    "W": ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."],
    "X": ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
    "Y": ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
    "Z": ["#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"],
    " ": [".....", ".....", ".....", ".....", ".....", ".....", "....."],
    ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
    ",": [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."],
    ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
    "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
    "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
    "=": [".....", ".....", "#####", ".....", "#####", ".....", "....."],
    "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
    ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
    "/": [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."],
    "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
    "'": ["..#..", "..#..", ".#...", ".....", ".....", ".....", "....."],
    "_": [".....", ".....", ".....", ".....", ".....", ".....", "#####"],
    "|": ["..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
    "?": [".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."],
}
FONT = {ch: [[c == "#" for c in row] for row in rows] for ch, rows in _FONT_ROWS.items()}

# distinguishable line colours
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
    (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
    (188, 189, 34), (23, 190, 207),
]


class Canvas:
    def __init__(self, w, h, bg=(255, 255, 255)):
        self.w, self.h = w, h
        self.px = bytearray(bytes(bg) * (w * h))

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            o = 3 * (y * self.w + x)
            self.px[o:o + 3] = bytes(c)

    def get(self, x, y):
        o = 3 * (y * self.w + x)
        return tuple(self.px[o:o + 3])

    def rect(self, x0, y0, x1, y1, c):
        """Filled rectangle, corners inclusive."""
        for y in range(max(0, min(y0, y1)), min(self.h, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.w, max(x0, x1) + 1)):
                self.set(x, y, c)

    def line(self, x0, y0, x1, y1, c, width=1):
        """Bresenham; width > 1 stamps a small square at every point."""
        x0, y0, x1, y1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        r0 = -(width // 2)
        r1 = r0 + width - 1
        while True:
            if width == 1:
                self.set(x0, y0, c)
            else:
                for yy in range(y0 + r0, y0 + r1 + 1):
                    for xx in range(x0 + r0, x0 + r1 + 1):
                        self.set(xx, yy, c)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x, y, s, c=(0, 0, 0), scale=2):
        """Draws s with its top-left corner at (x, y); returns the width."""
        cx = x
        for ch in s.upper():
            g = FONT.get(ch, FONT["?"])
            for gy, row in enumerate(g):
                for gx, on in enumerate(row):
                    if on:
                        self.rect(cx + gx * scale, y + gy * scale,
                                  cx + gx * scale + scale - 1, y + gy * scale + scale - 1, c)
            cx += 6 * scale
        return cx - x

    def png(self):
        raw = bytearray()
        stride = 3 * self.w
        for y in range(self.h):
            raw.append(0)  # filter: none
            raw += self.px[y * stride:(y + 1) * stride]

        def chunk(kind, data):
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        return (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
                + chunk(b"IEND", b""))


def text_width(s, scale=2):
    return 6 * scale * len(s)


def nice_ticks(lo, hi, n=5):
    """Round tick values (steps of 1, 2, 2.5 or 5 x 10^j) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(mag * m for m in (1, 2, 2.5, 5, 10) if mag * m >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    ticks = []
    i = 0
    while start + i * step <= hi + 1e-9 * step:
        ticks.append(start + i * step)
        i += 1
    if ticks[-1] < hi - 1e-9 * step:
        ticks.append(start + i * step)
    return ticks, step


def fmt_tick(v, step):
    if step >= 1 and abs(v - round(v)) < 1e-9:
        return str(int(round(v)))
    return f"{v:.1f}" if step >= 0.1 else f"{v:.2f}"


def panel(cv, ox, oy, w, h, series, title, xlabel, ylabel, widths=None):
    """One line chart in the box (ox, oy, w, h) of canvas cv."""
    left, right, top, bottom = 80, 16, 56, 56
    pw, ph = w - left - right, h - top - bottom
    xs = [x for _, pts in series for x, _ in pts] or [0, 1]
    ys = [y for _, pts in series for _, y in pts] or [0, 1]
    x0, x1 = min(0, min(xs)), max(xs)
    y0, y1 = min(0, min(ys)), max(ys)
    xt, xstep = nice_ticks(x0, x1)
    yt, ystep = nice_ticks(y0, y1)
    x1, y1 = max(x1, xt[-1]), max(y1, yt[-1])
    x0, y0 = min(x0, xt[0]), min(y0, yt[0])

    def X(x):
        return ox + left + (x - x0) / ((x1 - x0) or 1) * pw

    def Y(y):
        return oy + top + ph - (y - y0) / ((y1 - y0) or 1) * ph

    grid, ink = (225, 225, 225), (0, 0, 0)
    for t in yt:
        cv.line(ox + left, Y(t), ox + left + pw, Y(t), grid)
        s = fmt_tick(t, ystep)
        cv.text(ox + left - 8 - text_width(s), int(Y(t)) - 7, s)
    for t in xt:
        cv.line(X(t), oy + top, X(t), oy + top + ph, grid)
        s = fmt_tick(t, xstep)
        cv.text(int(X(t)) - text_width(s) // 2, oy + top + ph + 8, s)
    cv.line(ox + left, oy + top, ox + left, oy + top + ph, ink, 2)
    cv.line(ox + left, oy + top + ph, ox + left + pw, oy + top + ph, ink, 2)
    for i, (_, pts) in enumerate(series):
        c = PALETTE[i % len(PALETTE)]
        wd = (widths or {}).get(i, 2)
        for (a, b), (cc, d) in zip(pts, pts[1:]):
            cv.line(X(a), Y(b), X(cc), Y(d), c, wd)
    cv.text(ox + left, oy + 8, title)
    cv.text(ox + left + pw // 2 - text_width(xlabel) // 2, oy + h - 26, xlabel)
    cv.text(ox + 8, oy + 32, ylabel)


def legend(cv, x, y, labels):
    for i, label in enumerate(labels):
        c = PALETTE[i % len(PALETTE)]
        cv.rect(x, y, x + 16, y + 13, c)
        cv.text(x + 24, y, label[:20])
        y += 26


def line_chart(series, title, xlabel, ylabel, w=1000, h=620, widths=None):
    """series: list of (label, [(x, y), ...]). Returns PNG bytes."""
    cv = Canvas(w, h)
    panel(cv, 0, 0, w - 270, h, series, title, xlabel, ylabel, widths)
    legend(cv, w - 260, 56, [label for label, _ in series])
    return cv.png()


def chart_panels(panels, labels, w=1500, h=620, widths=None):
    """Side-by-side panels, each (series, title, xlabel, ylabel), sharing
    one legend (labels, in series order) on the right. Returns PNG bytes."""
    cv = Canvas(w, h)
    pw = (w - 270) // len(panels)
    for i, (series, title, xlabel, ylabel) in enumerate(panels):
        panel(cv, i * pw, 0, pw, h, series, title, xlabel, ylabel, widths)
    legend(cv, w - 260, 56, labels)
    return cv.png()
