#!/usr/bin/env python3
"""Folds `perf script` stacks and draws them as a flame graph (SVG), width = share of samples.

usage: perf script -i perf.data | bench/flamegraph.py TITLE > flame.svg
       (also writes the folded stacks, one "frame;frame;frame count" per line, to $FOLDED if set)
"""
import collections
import html
import os
import sys


def fold(lines):
    """perf script prints an event header (command first), then one frame per indented line, leaf
    first, then a blank line. A stack is "command;outermost;...;leaf"."""
    stacks = collections.Counter()
    comm, frames = None, []

    def flush():
        if comm is not None:
            stacks[";".join([comm] + frames[::-1])] += 1

    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
        elif line[0] in " \t":
            parts = line.split(None, 1)
            name = parts[1] if len(parts) > 1 else parts[0]
            name = name.rsplit(" (", 1)[0].split("+0x", 1)[0]  # drop the offset and " (dso)"
            frames.append(name or "[unknown]")
        else:
            comm, frames = line.split()[0], []
    flush()
    return stacks


def tree(stacks):
    root = {"n": 0, "kids": {}}
    for stack, n in stacks.items():
        node = root
        node["n"] += n
        for frame in stack.split(";"):
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += n
    return root


def svg(root, title, width=1600, row=17):
    total = max(root["n"], 1)
    boxes = []

    def walk(node, name, x, depth):
        w = node["n"] / total * width
        if w < 0.3:
            return depth
        boxes.append((x, depth, w, name, node["n"]))
        deepest, cx = depth, x
        for kid_name, kid in sorted(node["kids"].items()):
            deepest = max(deepest, walk(kid, kid_name, cx, depth + 1))
            cx += kid["n"] / total * width
        return deepest

    deepest = walk(root, "all", 0.0, 0)
    height = (deepest + 3) * row
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">',
           f'<text x="4" y="{row - 4}" font-size="13">{html.escape(title)} ({total} samples)</text>']
    for x, depth, w, name, n in boxes:
        y = height - (depth + 1) * row
        hue = 20 + (hash(name) % 40)
        label = html.escape(name)
        text = label if w > 7 * len(name) else label[: max(int(w / 7) - 2, 0)] + (".." if w > 21 else "")
        out.append(f'<g><title>{label}: {n} samples, {100.0 * n / total:.1f}%</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{max(w - 0.5, 0.1):.1f}" height="{row - 1}" fill="hsl({hue},85%,60%)"/>'
                   f'<text x="{x + 2:.1f}" y="{y + row - 5}">{text}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    title = sys.argv[1] if len(sys.argv) > 1 else "flame graph"
    stacks = fold(sys.stdin)
    if os.environ.get("FOLDED"):
        with open(os.environ["FOLDED"], "w") as f:
            for stack, n in sorted(stacks.items()):
                f.write(f"{stack} {n}\n")
    sys.stdout.write(svg(tree(stacks), title))


if __name__ == "__main__":
    main()
