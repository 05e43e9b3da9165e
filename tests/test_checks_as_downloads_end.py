"""An install of several wheels checks each one as its download ends, while the others go on
(``installer._checks.Checks``, ``_parallel.collect``'s ``on_done``): a bad wheel fails the install without
waiting for the last download, and what a check says is said once.

Through a real server on 127.0.0.1: one wheel paced slowly, the others at full speed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from test_harden_output_support import DI, demo_members, metadata, wheel_bytes

import wheelstream
from fixtures.wellformed import make_wheel
from wheelstream.errors import WheelMetadataError
from wheelstream.fetch import DownloadResult
from wheelstream.testing import FaultServer
from wheelstream.testing._faults import FaultPlan, Throttle

DEMO = "demo-1.0-py3-none-any.whl"
SLOW = "slow-1.0-py3-none-any.whl"
SLOW_SIZE = 1 << 20
SLOW_RATE = 256 * 1024  # bytes per second: the slow wheel takes ~4 s


def _slow_wheel() -> bytes:
    blob = random.Random(7).randbytes(SLOW_SIZE)  # incompressible: the archive is as big as the blob
    return make_wheel({"slow/blob.bin": blob}, name="slow")


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_a_bad_wheel_fails_the_install_before_a_slow_download_ends(
    server: FaultServer, tmp_path: Path, workers: str
) -> None:
    bad = server.add_file(DEMO, wheel_bytes(demo_members({f"{DI}/METADATA": metadata(name="other")})))
    slow = server.add_file(SLOW, _slow_wheel(), plan=FaultPlan(Throttle(bytes_per_second=SLOW_RATE)))
    target = tmp_path / "target"
    started = time.monotonic()
    with pytest.raises(WheelMetadataError, match="inconsistent name") as caught:
        wheelstream.install(
            [slow, bad],
            target,
            cache_dir=tmp_path / "cache",
            jobs=2,
            workers=workers,  # type: ignore[arg-type]
        )
    elapsed = time.monotonic() - started
    assert caught.value.wheel == DEMO
    # The slow download (~4 s) was stopped, not waited for: the check ran as the bad wheel arrived.
    assert elapsed < SLOW_SIZE / SLOW_RATE / 2, elapsed
    assert server.bytes_sent(SLOW) < SLOW_SIZE
    assert not target.exists()  # nothing was installed
    # The stopped download checkpointed: a later run resumes it.
    assert list((tmp_path / "cache" / "partial").glob("*.json"))


def test_a_warning_from_a_check_run_early_is_given_once_and_kept_in_the_report(
    server: FaultServer, tmp_path: Path
) -> None:
    newer = server.add_file(DEMO, wheel_bytes(demo_members({f"{DI}/WHEEL": b"Wheel-Version: 1.9\n"})))
    slow = server.add_file(SLOW, _slow_wheel(), plan=FaultPlan(Throttle(bytes_per_second=8 * SLOW_RATE)))
    warnings: list[str] = []
    result = wheelstream.install(
        [slow, newer],
        tmp_path / "target",
        cache_dir=tmp_path / "cache",
        jobs=2,
        ignore_tags=True,
        on_warning=warnings.append,
    )
    said = [w for w in warnings if "newer Wheel-Version (1.9)" in w]
    assert len(said) == 1, warnings
    assert result.report is not None
    assert [w for w in result.report.warnings if "newer Wheel-Version (1.9)" in w] == said
    assert (tmp_path / "target" / "demo" / "__init__.py").is_file()
    assert (tmp_path / "target" / "slow" / "blob.bin").stat().st_size == SLOW_SIZE


def test_a_lock_hash_mismatch_is_named_as_such_before_any_check(server: FaultServer, tmp_path: Path) -> None:
    """``install_sources``' ``verify`` (a lock's hashes) comes before the checks: a tampered wheel whose
    metadata is also wrong is reported by its hash."""
    from wheelstream._api import install_sources
    from wheelstream.errors import HashMismatch

    bad = server.add_file(DEMO, wheel_bytes(demo_members({f"{DI}/METADATA": metadata(name="other")})))

    def verify(where: str, result: DownloadResult) -> None:
        raise HashMismatch(f"{where}: not the locked hash")

    with pytest.raises(HashMismatch, match="not the locked hash"):
        install_sources([bad], tmp_path / "target", cache_dir=tmp_path / "cache", verify=verify)
    assert not (tmp_path / "target").exists()
