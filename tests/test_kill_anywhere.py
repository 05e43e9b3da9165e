"""kill -9 anywhere in an install's life, then the same command again: the rerun exits 0, the target is exactly
what an uninterrupted install makes, nothing is left in the target or the cache, and no byte the killed process
had written is fetched again (counted on the server).

Every run is a real ``wheelstream install -U`` (an upgrade from 1.0 to 2.0, so the commit sets items aside and
retires them) from the test bed's throttled server. Download kills come from outside, at a server-side byte
count; every later phase is reached through the named kill points of ``wheelstream._killpoints``.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import saved_journal, wait_until, ws, ws_start

from wheelstream._urls import cache_key
from wheelstream.testing import FaultPlan, FaultServer, Throttle
from wheelstream.testing._wheel import wheel_archive

RATE = 12 << 20  # bytes per second: a download takes ~0.6 s, long enough to be killed anywhere in it
BLOCK = 1 << 20
# A block is written into the partial, then hashed into its trail line (``unpack._tee``): a kill between the two
# leaves it on disk but proven by nothing, so a resume fetches it again. Rare on a quiet machine; under load
# (the CI's two cores running both halves of the suite) it was seen once, 1,048,576 bytes past the bound.
UNPROVEN = BLOCK


def _files(version: str) -> dict[str, bytes]:
    rng = random.Random(f"kill-anywhere {version}")
    files = {f"killme/m{i:03d}.py": f"X = {rng.random()!r}  # {version}\n".encode() * 40 for i in range(300)}
    for i in range(3):  # incompressible: most of the bytes, so a kill lands inside a large entry too
        files[f"killme/blob{i}.bin"] = rng.randbytes(1_500_000)
    files["killme/zeros.bin"] = bytes(2_000_000)
    files["killme/__init__.py"] = f"VERSION = {version!r}\n".encode()
    return files


def _wheel(version: str) -> tuple[str, bytes]:
    filename = f"killme-{version}-py3-none-any.whl"
    scripts = "[console_scripts]\nkillme = killme:main\n"
    return filename, wheel_archive(_files(version), name="killme", version=version, entry_points=scripts)


V1, V2 = _wheel("1.0"), _wheel("2.0")


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root``: a file's bytes and executable bit, a directory's mark. ``direct_url.json``
    names the URL installed from (each scene has its own), so it and its RECORD row are left out."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            found[rel] = "dir"
        elif path.name == "RECORD":
            rows = [row for row in path.read_bytes().splitlines() if b"/direct_url.json," not in row]
            found[rel] = b"\n".join(rows)
        elif path.name != "direct_url.json":
            found[rel] = path.read_bytes() + (b"+x" if os.access(path, os.X_OK) else b"")
    return found


def leftovers(target: Path, cache: Path) -> list[str]:
    """What a finished command must not leave: bookkeeping in the target, unfinished or unpacked state in the
    cache (lock files of finished downloads are fine: they are how the next one waits)."""
    left = [p.name for p in target.iterdir() if p.name.startswith(".wheelstream-")]
    left += [f"partial/{p.name}" for p in (cache / "partial").iterdir() if not p.name.endswith(".lock")]
    left += [f"staging/{p.name}" for p in (cache / "staging").iterdir()]
    left += [f"claimed/{p.name}" for p in (cache / "claimed").iterdir() if p.is_dir()]
    return left


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes | str]:
    """The target an uninterrupted upgrade makes."""
    base = tmp_path_factory.mktemp("reference")
    with FaultServer() as server:
        for name, data in (V1, V2):
            run = ws(
                "install", "-U", server.add_file(name, data), "-t", str(base / "t"), cache=base / "cache"
            )
            assert run.code == 0, run.err
    return snapshot(base / "t")


class Scene:
    """One target holding 1.0, a cache, and the 2.0 URL served throttled with its own byte count."""

    def __init__(self, server: FaultServer, tmp_path: Path, link_mode: str = "move") -> None:
        self.server, self.cache, self.target = server, tmp_path / "cache", tmp_path / "t"
        self.link_mode = link_mode
        v1 = server.add_file(f"{tmp_path.name}/{V1[0]}", V1[1])
        assert ws("install", v1, "-t", str(self.target), cache=self.cache).code == 0
        self.name = f"{tmp_path.name}/{V2[0]}"
        self.url = server.add_file(self.name, V2[1], plan=FaultPlan(Throttle(bytes_per_second=RATE)))

    def args(self) -> list[str]:
        return ["install", "-U", self.url, "-t", str(self.target), "--link-mode", self.link_mode]

    def start(self, **env: str) -> subprocess.Popen[str]:
        return ws_start(*self.args(), cache=self.cache, env=env)

    def sent(self) -> int:
        assert self.server.wait_idle(10)  # a killed connection's bytes are all counted
        return self.server.bytes_sent(self.name)

    def partial_size(self) -> int:
        part = self.cache / "partial" / f"{cache_key(self.url)}.whl.part"
        return part.stat().st_size if part.exists() else 0

    def rerun(self, expected: dict[str, bytes | str]) -> None:
        run = ws(*self.args(), cache=self.cache)
        assert run.code == 0, run.err
        assert "Traceback" not in run.err
        assert snapshot(self.target) == expected
        assert leftovers(self.target, self.cache) == []

    def refetched(self) -> int:
        return self.sent() - len(V2[1])


# The download alone (the rerun installs), with no periodic checkpoint after the first.
FIRST_CHECKPOINT_ONLY = """
import sys, httpx
from wheelstream._cache import Cache
from wheelstream.fetch import DownloadOptions, fetch_wheel
with httpx.Client() as client:
    fetch_wheel(sys.argv[1], cache=Cache.at(sys.argv[2]), client=client,
                options=DownloadOptions(checkpoint_bytes=1 << 40, checkpoint_seconds=1e9), keep_unpacked=False)
"""


def sent_at_least(server: FaultServer, name: str, count: int) -> bool:
    return server.bytes_sent(name) >= count


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_killed_while_downloading_the_rerun_fetches_only_what_was_never_written(
    faulty_server: FaultServer, tmp_path: Path, expected: dict[str, bytes | str]
) -> None:
    """Before the first checkpoint, early, mid, late, at the last bytes: what the rerun fetches again is at
    most what the killed process had received but not written (the socket buffers, the block being
    coalesced), and the one block a kill may catch between its write and its trail line (``UNPROVEN``): never
    more of what it had written, durable or not."""
    again: list[int] = []
    for fraction in (0.05, 0.3, 0.55, 0.8, 0.97):
        scene = Scene(faulty_server, tmp_path / f"at{int(fraction * 100)}")
        proc = scene.start()
        at = int(len(V2[1]) * fraction)
        wait_until(
            functools.partial(sent_at_least, faulty_server, scene.name, at), timeout=30, what=f"{at} sent"
        )
        kill(proc)
        unwritten = scene.sent() - scene.partial_size()
        scene.rerun(expected)
        again.append(scene.refetched())
        assert scene.refetched() <= unwritten + UNPROVEN, (fraction, scene.refetched(), unwritten)
    assert max(again) <= 8 << 20
    assert statistics.median(again) <= BLOCK, again


@pytest.mark.parametrize(
    ("point", "link_mode"),
    [
        ("download.end-of-input", "move"),
        ("publish.remembered", "move"),
        ("publish.wheel-moved", "move"),
        ("publish.journal-removed", "move"),
        ("publish.journal-removed", "copy"),
        ("publish.settled", "move"),
        ("publish.settled", "copy"),
        ("install.home-written", "move"),
        ("commit.rename@1", "move"),
        ("commit.rename@2", "move"),
        ("commit.rename@4", "move"),
        ("commit.retire", "move"),
    ],
)
def test_killed_after_the_download_the_rerun_fetches_nothing(
    faulty_server: FaultServer, tmp_path: Path, expected: dict[str, bytes | str], point: str, link_mode: str
) -> None:
    scene = Scene(faulty_server, tmp_path, link_mode)
    proc = scene.start(WHEELSTREAM_KILL_AT=point)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"{point} was not reached"
    scene.rerun(expected)
    assert scene.refetched() == 0


def test_killed_while_a_second_process_waits_for_the_same_wheel(
    faulty_server: FaultServer, tmp_path: Path, expected: dict[str, bytes | str]
) -> None:
    """The second process waits on the URL's lock; the first is killed mid-download; the second takes over
    its partial and fetches only what was never written, and the first's rerun fetches nothing."""
    scene = Scene(faulty_server, tmp_path)
    other = tmp_path / "t2"
    other.mkdir()
    os.system(f"cp -a {scene.target}/. {other}/")
    first = scene.start()
    wait_until(lambda: faulty_server.bytes_sent(scene.name) >= len(V2[1]) // 2, timeout=30, what="half sent")
    second = ws_start("install", "-U", scene.url, "-t", str(other), cache=scene.cache)
    kill(first)
    unwritten = scene.sent() - scene.partial_size()
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert snapshot(other) == expected
    scene.rerun(expected)
    assert scene.refetched() <= unwritten + UNPROVEN


@pytest.mark.parametrize("spoil", ["zeroed", "truncated", "one-block-zeroed"])
def test_a_power_loss_resumes_from_what_survived_intact(
    faulty_server: FaultServer, tmp_path: Path, expected: dict[str, bytes | str], spoil: str
) -> None:
    """A power loss can leave the partial's tail past the durable length ``D`` zeroed or cut short. The rerun
    keeps no byte the trail cannot prove: it resumes at ``D``, or at the end of the last intact block before
    the damage, and the tree is exact (no mixed bytes)."""
    scene = Scene(faulty_server, tmp_path)
    # Only the first checkpoint (after one block): however slow the machine, most bytes lie past D.
    proc = subprocess.Popen(
        [sys.executable, "-c", FIRST_CHECKPOINT_ONLY, scene.url, str(scene.cache)],
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: (saved_journal(scene.cache, scene.url) or {}).get("durable", 0) > 0, timeout=30)
    wait_until(lambda: scene.partial_size() >= len(V2[1]) * 0.7, timeout=30, what="70 % written")
    kill(proc)
    durable = json.loads((scene.cache / "partial" / f"{cache_key(scene.url)}.json").read_text())["durable"]
    part = scene.cache / "partial" / f"{cache_key(scene.url)}.whl.part"
    size = part.stat().st_size
    assert size > durable + BLOCK
    with open(part, "r+b") as file:
        if spoil == "zeroed":
            file.seek(durable)
            file.write(bytes(size - durable))
            latest = durable
        elif spoil == "truncated":
            latest = durable + (size - durable) // 2
            file.truncate(latest)
        else:
            latest = durable + (size - durable) // 2
            file.seek(latest)
            file.write(bytes(4096))
    sent = scene.sent()
    scene.rerun(expected)
    asked = faulty_server.requests_for(scene.name)[-1].range
    assert asked is not None
    resumed = int(asked.removeprefix("bytes=").rstrip("-"))
    assert durable <= resumed <= latest
    if spoil == "zeroed":
        assert resumed == durable
    assert scene.sent() - sent == len(V2[1]) - resumed


@pytest.mark.parametrize("point", ["publish.remembered", "publish.wheel-moved", "publish.journal-removed"])
def test_a_download_killed_while_publishing_fetches_nothing_again(
    faulty_server: FaultServer, tmp_path: Path, point: str
) -> None:
    """``download -d DIR`` puts the wheel in DIR, not the cache: a rerun after a kill at any publication step
    uses what is there (a complete partial, or the file in DIR, checked whole) and fetches nothing, and the
    file in DIR is the wheel, byte for byte."""
    name = f"{tmp_path.name}/{V1[0]}"
    url = faulty_server.add_file(name, V1[1])
    dest, cache = tmp_path / "dest", tmp_path / "cache"
    proc = ws_start("download", url, "-d", str(dest), cache=cache, env={"WHEELSTREAM_KILL_AT": point})
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"{point} was not reached"
    assert faulty_server.wait_idle(10)
    sent = faulty_server.bytes_sent(name)
    run = ws("download", url, "-d", str(dest), cache=cache)
    assert run.code == 0, run.err
    assert faulty_server.bytes_sent(name) == sent == len(V1[1])
    assert (dest / V1[0]).read_bytes() == V1[1]
    assert [p.name for p in (cache / "partial").iterdir() if not p.name.endswith(".lock")] == []
