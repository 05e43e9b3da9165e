"""The package's layers (docs/architecture.md, "Layers"): each part imports only the parts below it.

Read from the source with :mod:`ast` (imports inside functions count too: a lazy import is still a
dependency), so a new import that climbs a layer fails here with the edge named, before it turns the byte
flow into a knot nobody can read.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wheelstream"

# part -> the parts it may import. A part is a subpackage or a top-level module of wheelstream.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_killpoints": set(),  # the test bed's SIGKILL points: imported by every stage that has one
    "_interrupts": set(),  # the signals taken as Ctrl-C: held, ignored or masked alike everywhere
    "zip": {"errors"},
    "_urls": {"errors", "_digests"},  # the hashes a link's fragment may pin
    "_progress": set(),
    "_staged": set(),
    "_digests": set(),  # a finished file by several hash algorithms: the lock's and the index's other hashes
    "transport": {"errors", "__version__"},
    "unpack": {
        "errors",
        "zip",
        "_staged",
        "_killpoints",
        "_interrupts",
    },  # never the cache: a Tee is told where its journal lives
    "_cache": {
        "unpack",
        "errors",
        "_digests",
    },  # the journal's two files go together when a download is forgotten
    "installer": {"errors", "zip", "_staged", "_killpoints", "_interrupts"},
    "fetch": {
        "_digests",  # a URL fragment's other hashes, read off the finished file
        "errors",
        "zip",
        "_staged",
        "_urls",
        "_progress",
        "transport",
        "unpack",
        "_cache",
        "_killpoints",
    },
    "index": {"errors", "_urls", "_cache", "transport", "_digests"},
    "_workers": {
        "_progress",
        "fetch",
        "transport",
        "unpack",
        "_interrupts",
    },  # unpack: may it fork beside idle writers
    "_sources": {"errors", "_urls", "_cache", "index", "_digests"},
    "_parallel": {"errors", "_urls", "_progress", "_cache", "_sources", "fetch", "_workers"},
    "_fetch_many": {
        "_digests",  # why two pins of a file share none
        "errors",
        "_staged",
        "_urls",
        "_cache",
        "_parallel",
        "_progress",
        "_sources",
        "fetch",
        "installer",
        "transport",
    },
    "_api": {
        "_fetch_many",
        "errors",
        "_urls",
        "zip",
        "_progress",
        "transport",
        "installer",
        "fetch",
        "_cache",
        "_sources",
        "_parallel",
    },
    "_plan": {"errors", "_api", "_cache", "_fetch_many", "_sources", "fetch", "installer", "zip"},
    "_pylock": {"errors", "_digests", "_urls"},  # _urls: a refused url is quoted without its password
    "_lock_api": {
        "errors",
        "zip",
        "_api",
        "_fetch_many",
        "_cache",
        "_progress",
        "_plan",
        "_pylock",
        "_sources",  # LockedFile: what the lock says of each source's file
        "_urls",  # a locked URL's cache key, to forget a wheel its other hashes refused
        "fetch",
        "installer",
    },
    "testing": {"errors", "zip", "_urls"},
    "cli": {
        "__version__",
        "_digests",
        "_interrupts",
        "errors",
        "zip",
        "_staged",
        "_urls",
        "_progress",
        "transport",
        "unpack",
        "installer",
        "_cache",
        "index",
        "_api",
        "_plan",
        "_pylock",
        "_lock_api",
        "testing",
    },
    "__init__": {"_api", "_lock_api", "_plan", "_progress", "errors", "installer"},
    "__main__": {"cli"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> set[str]:
    """The parts of wheelstream that ``path`` imports (absolute or relative)."""
    package = list(path.relative_to(PACKAGE).parent.parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                modules.append(".".join(["wheelstream", *base, *([node.module] if node.module else [])]))
            else:
                modules.append(node.module or "")
            if modules[0] == "wheelstream":
                modules += [f"wheelstream.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        found.update(m.split(".")[1] for m in modules if m.startswith("wheelstream."))
    return found


def test_every_part_imports_only_the_layers_below_it() -> None:
    climbing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        assert part in ALLOWED, f"{path.relative_to(PACKAGE)}: a new part; give it its place in ALLOWED"
        for target in sorted(_imports(path) - {part} - ALLOWED[part]):
            climbing.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not climbing, "imports against the layers:\n" + "\n".join(climbing)


def test_the_layers_have_no_cycle() -> None:
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(part: str, path: list[str]) -> None:
        if seen.get(part) == 2:
            return
        assert seen.get(part) != 1, " -> ".join([*path, part])
        seen[part] = 1
        for below in sorted(ALLOWED.get(part, ())):
            visit(below, [*path, part])
        seen[part] = 2

    for part in sorted(ALLOWED):
        visit(part, [])
