"""A one-line progress bar on stderr, redrawn in place with a carriage return.

    [#########...........]  450/1000  loss 0.8123  lr 8.3e-04  12,345 tok/s  0:21<0:26

No dependency: the line is written again (``\\r``) at most every ``min_interval`` seconds and
at the last step, so drawing costs nothing next to a training step. ``message`` prints a whole
line (an evaluation result) above the bar and redraws the bar under it.
"""

import sys
import time


def format_seconds(seconds):
    """``h:mm:ss`` or ``m:ss``."""
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """Progress of ``total`` steps; ``update(step, **values)`` redraws, ``close()`` ends the line.

    ``values`` are shown in the given order: floats with 4 significant digits, except ``lr``
    (scientific) and ``tok/s``-like integers (thousands separated). ``enabled=False`` draws
    nothing, for tests and scripts.
    """

    def __init__(self, total, start=0, width=20, stream=None, enabled=True, min_interval=0.1):
        self.total, self.start, self.width = total, start, width
        self.stream = sys.stderr if stream is None else stream
        self.enabled, self.min_interval = enabled, min_interval
        self._t0 = time.perf_counter()
        self._last_draw = -float("inf")
        self._line = ""

    def update(self, step, **values):
        if not self.enabled:
            return
        now = time.perf_counter()
        if step < self.total and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        filled = int(self.width * step / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self._t0
        done = step - self.start
        eta = elapsed / done * (self.total - step) if done > 0 else 0.0
        shown = "  ".join(_format_value(k, v) for k, v in values.items())
        digits = len(str(self.total))
        self._draw(f"[{bar}] {step:>{digits}}/{self.total}  {shown}  {format_seconds(elapsed)}<{format_seconds(eta)}")

    def message(self, text):
        """Print ``text`` on a line of its own, above the bar."""
        if not self.enabled:
            return
        line = self._line
        self.stream.write("\r" + " " * len(line) + "\r" + text + "\n")
        self._line = ""
        self._draw(line)

    def close(self):
        if self.enabled and self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = ""

    def _draw(self, line):
        pad = " " * max(0, len(self._line) - len(line))  # wipe the tail of a longer previous line
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._line = line


def _format_value(name, value):
    if name == "lr":
        return f"lr {value:.1e}"
    if isinstance(value, int) or name.endswith("/s"):
        return f"{round(value):,} {name}"
    return f"{name} {value:.4g}"
