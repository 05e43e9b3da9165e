"""Parser throughput: ZipStreamParser (+ Extractor) vs plain ``zipfile`` extraction of the same archive.

    .venv/bin/python benchmarks/parser_throughput.py [WHEEL] [--chunk 262144] [--repeat 3]

Without WHEEL it builds a ~200 MB deflate wheel from ``fixtures.wellformed.big_text`` (deterministic).
Reports MB/s of *inflated* output for: parse only (events discarded), parse + extract to a temp dir, and
``zipfile.ZipFile.extractall``. Input is read from memory so the network and page cache are out of the way.
Figures are printed, never asserted (issue 3: "no timing asserts in tests").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fixtures.wellformed import big_text, make_wheel
from wheelstream.unpack._extract import Extractor
from wheelstream.zip import INFLATE_BACKEND, EntryData, ZipStreamParser


def generated_wheel() -> bytes:
    files = {f"demo/pkg{i // 50}/mod{i}.py": big_text(200_000, seed=i) for i in range(1000)}
    return make_wheel(files)


def parse_only(data: bytes, chunk: int) -> int:
    parser = ZipStreamParser()
    produced = 0
    for pos in range(0, len(data), chunk):
        for event in parser.feed(data[pos : pos + chunk]):
            if isinstance(event, EntryData):
                produced += len(event.data)
    parser.feed(b"")
    return produced


def parse_and_extract(data: bytes, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parser = ZipStreamParser()
        extractor = Extractor(Path(tmp) / "x")
        for pos in range(0, len(data), chunk):
            extractor.handle_all(parser.feed(data[pos : pos + chunk]))
        extractor.handle_all(parser.feed(b""))


def zipfile_extract(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as archive:
        archive.extractall(tmp)


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel", nargs="?", type=Path)
    ap.add_argument("--chunk", type=int, default=256 * 1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.wheel or Path(tmp) / "demo-1.0-py3-none-any.whl"
        if args.wheel is None:
            path.write_bytes(generated_wheel())
        data = path.read_bytes()
        with zipfile.ZipFile(path) as archive:
            inflated = sum(i.file_size for i in archive.infolist())
            entries = len(archive.infolist())
        mb = inflated / 1e6
        print(
            f"archive: {path.name}: {len(data) / 1e6:.1f} MB compressed, {mb:.1f} MB inflated, {entries} entries"
        )
        print(f"inflate backend: {INFLATE_BACKEND}; chunk {args.chunk} bytes; best of {args.repeat}")
        rows = [
            ("ZipStreamParser, events only", best(lambda: parse_only(data, args.chunk), args.repeat)),
            ("ZipStreamParser + Extractor", best(lambda: parse_and_extract(data, args.chunk), args.repeat)),
            ("zipfile.extractall", best(lambda: zipfile_extract(path), args.repeat)),
        ]
        print("| what | seconds | MB/s inflated |\n|---|---|---|")
        for name, seconds in rows:
            print(f"| {name} | {seconds:.2f} | {mb / seconds:.0f} |")


if __name__ == "__main__":
    main()
