#!/usr/bin/env python3
"""Fails when a module under src/ imports a layer above its own.

The layers are the ones ARCHITECTURE.md describes, lowest first. A module may use its own
layer's module and any layer below; it may not reach a module above it, nor a different
module of its own layer (that is how import circles start). Every `crate::` path in code
counts, whether in a `use` line or written inline; comments do not.

Also fails on a source file over 800 lines (tests kept in their own file excepted).
"""
import pathlib
import re
import sys

LAYERS = [
    ["config"],
    ["runtime", "tc3", "test_support"],
    ["wire"],
    ["identity", "ccc"],
    ["inject"],
    ["login"],
    ["diag"],
    ["state"],
    ["proxy"],
    ["listener"],
    ["emulator"],
    ["demo"],
    ["cmd", "fuzzing"],
    ["lib"],
]
MAX_LINES = 800

ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"
LAYER_OF = {m: i for i, mods in enumerate(LAYERS) for m in mods}
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\bcrate::\{([^}]*)\}")


def module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT)
    first = rel.parts[0]
    if first in ("lib.rs", "main.rs"):
        return "lib"
    return first[:-3] if first.endswith(".rs") else first


def code_lines(text: str):
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("//"):
            continue
        yield n, line.split("//")[0] if "://" not in line else line


def main() -> int:
    problems = []
    files = sorted(ROOT.rglob("*.rs"))
    for f in files:
        text = f.read_text(encoding="utf-8")
        me = module_of(f)
        if me not in LAYER_OF:
            problems.append(f"{f.relative_to(ROOT.parent)}: module `{me}` has no layer in scripts/check-layers.py")
            continue
        mine = LAYER_OF[me]
        lines = text.count("\n")
        if lines > MAX_LINES and not f.name.endswith("tests.rs"):
            problems.append(f"{f.relative_to(ROOT.parent)}: {lines} lines (at most {MAX_LINES})")
        for n, line in code_lines(text):
            targets = PATH.findall(line)
            for group in GROUP.findall(line):
                targets += [t.strip().split("::")[0] for t in group.split(",") if t.strip()]
            for target in targets:
                if target == me or target not in LAYER_OF:
                    continue
                theirs = LAYER_OF[target]
                if theirs > mine or (theirs == mine and target != me):
                    problems.append(
                        f"{f.relative_to(ROOT.parent)}:{n}: `{me}` (layer {mine}) imports `{target}` (layer {theirs})"
                    )
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} problem(s); the layer map is in ARCHITECTURE.md")
        return 1
    print(f"layers: {len(files)} files, no import runs upward, none over {MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
