"""Wheels for another machine: pip's ``--python-version``, ``--platform``, ``--implementation`` and ``--abi``
(``TargetPython``) for ``install --target`` and ``download``, through a real index on 127.0.0.1.

The tags are pip's (``get_supported``), with uv's reading of a ``manylinux_X_Y`` platform: every older glibc
too. The version decides ``Requires-Python``; the markers of a requirements file follow the machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ws
from packaging.tags import Tag
from test_harden_output_support import demo_members, metadata, wheel_bytes, write
from test_install_support import snapshot

import wheelstream
from wheelstream.errors import UsageError
from wheelstream.installer import TargetPython, probe_interpreter
from wheelstream.testing import FaultServer
from wheelstream.testing._wheel import wheel_archive

HERE = probe_interpreter(None)
OURS = f"{sys.version_info[0]}.{sys.version_info[1]}"
FLAVOURS = [
    "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-win_amd64",
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp312-abi3-macosx_11_0_arm64",
    "cp313-cp313-musllinux_1_1_aarch64",
]


def _tags(**given: object) -> list[str]:
    return [str(tag) for tag in TargetPython(**given).applied_to(HERE).tags]  # type: ignore[arg-type]


def _flavoured(tag: str) -> tuple[str, bytes]:
    files = {"demo/__init__.py": b"", "demo/flavour.txt": tag.encode()}
    return f"demo-1.0-{tag}.whl", wheel_archive(
        files, name="demo", version="1.0", tag=tag, root_is_purelib=False
    )


@pytest.fixture
def index() -> Iterator[FaultServer]:
    """One project, ``demo 1.0``, built for five machines."""
    with FaultServer() as server:
        for tag in FLAVOURS:
            server.add_file(*_flavoured(tag))
        yield server


def _chosen(index: FaultServer, tmp_path: Path, *options: str) -> str:
    """Which of the index's files ``download demo==1.0`` takes with ``options``."""
    run = ws(
        "download",
        "demo==1.0",
        "-d",
        str(tmp_path / "d"),
        "-i",
        f"{index.url}/simple/",
        *options,
        cache=tmp_path / "c",
    )
    assert run.code == 0, run.err
    (chosen,) = [path.name for path in (tmp_path / "d").iterdir()]
    return chosen.removeprefix("demo-1.0-").removesuffix(".whl")


# -- the tags --------------------------------------------------------------------------------------------------


def test_a_manylinux_platform_takes_every_older_glibc_and_the_legacy_names_in_packagings_order() -> None:
    tags = _tags(version="3.12", platforms=["manylinux_2_28_x86_64"])
    manylinux = [t.rpartition("-")[2] for t in tags if t.startswith("cp312-cp312-")]
    assert manylinux[:3] == ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64"]
    assert len(manylinux) == 24 + 3  # glibc 2.28 down to 2.5, and the three legacy names
    assert manylinux.index("manylinux_2_17_x86_64") + 1 == manylinux.index("manylinux2014_x86_64")
    assert manylinux.index("manylinux_2_12_x86_64") + 1 == manylinux.index("manylinux2010_x86_64")
    assert manylinux[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert "cp312-cp312-manylinux_2_29_x86_64" not in tags  # a newer glibc's wheel is not for this machine
    assert not any("win" in t or "macosx" in t or "musllinux" in t for t in tags)
    assert "py3-none-any" in tags


def test_an_arm_manylinux_stops_at_its_first_glibc_and_its_one_legacy_name() -> None:
    tags = _tags(version="3.12", platforms=["manylinux_2_28_aarch64"])
    assert "cp312-cp312-manylinux_2_17_aarch64" in tags
    assert "cp312-cp312-manylinux2014_aarch64" in tags
    assert "cp312-cp312-manylinux_2_16_aarch64" not in tags
    assert "cp312-cp312-manylinux2010_aarch64" not in tags


def test_a_legacy_name_is_its_glibc() -> None:
    tags = _tags(version="3.10", platforms=["manylinux2014_x86_64"])
    assert {
        "cp310-cp310-manylinux_2_17_x86_64",
        "cp310-cp310-manylinux_2_5_x86_64",
        "cp310-abi3-manylinux1_x86_64",
    } < set(tags)
    assert "cp310-cp310-manylinux_2_18_x86_64" not in tags


def test_musllinux_and_macos_take_their_older_releases() -> None:
    musl = _tags(version="3.13", platforms=["musllinux_1_2_aarch64"])
    assert "cp313-cp313-musllinux_1_0_aarch64" in musl
    assert "cp313-cp313-manylinux_2_17_aarch64" not in musl
    mac = _tags(version="3.12", platforms=["macosx_12_0_x86_64"])
    assert {
        "cp312-cp312-macosx_10_9_x86_64",
        "cp312-cp312-macosx_12_0_universal2",
        "cp312-abi3-macosx_10_13_intel",
    } < set(mac)
    arm = _tags(version="3.12", platforms=["macosx_11_0_arm64"])
    assert "cp312-cp312-macosx_11_0_universal2" in arm
    assert "cp312-cp312-macosx_10_9_x86_64" not in arm


def test_the_version_the_implementation_and_the_abis() -> None:
    assert _tags(version="312", platforms=["win_amd64"]) == _tags(version="3.12", platforms=["win_amd64"])
    newer = _tags(version="3.13", platforms=["win_amd64"])
    assert newer[0] == "cp313-cp313-win_amd64"
    assert "cp312-abi3-win_amd64" in newer
    assert "cp314-abi3-win_amd64" not in newer
    assert "cp312-cp312-win_amd64" not in newer
    only_none = _tags(version="3.12", platforms=["win_amd64"], abis=["none"])
    assert "cp312-none-win_amd64" in only_none
    assert "cp312-cp312-win_amd64" not in only_none
    pure = _tags(version="3.12", implementation="py", platforms=["any"])  # pip's generic tags
    assert {"py312-none-any", "py3-none-any"} < set(pure)
    assert not any(t.startswith("cp") for t in pure)
    pypy = _tags(version="3.10", implementation="pp", platforms=["manylinux_2_17_x86_64"])
    assert pypy[0].startswith("pp310-")
    assert not any(t.startswith("cp310-cp310") for t in pypy)


def test_what_is_not_given_is_the_interpreters_own() -> None:
    """Only ``--python-version``: this machine's platforms, as pip does; only ``--platform``: this version."""
    assert _tags(version=OURS) == [str(tag) for tag in HERE.tags]
    own = sys.implementation.cache_tag.replace("cpython-", "cp")
    assert _tags(platforms=["win_amd64"])[0] == f"{own}-{own}-win_amd64"


def test_the_tags_are_pips_where_pip_takes_the_platform_as_given() -> None:
    """pip itself (``pip debug``), where it is installed: the same tags in the same order for platforms it does
    not widen; for a manylinux one, pip's are ours without the older glibc's."""
    try:
        import pip  # noqa: F401
    except ImportError:
        pytest.skip("no pip here")
    for options, given in [
        (
            ["--python-version", "3.12", "--platform", "win_amd64"],
            {"version": "3.12", "platforms": ["win_amd64"]},
        ),
        (
            ["--python-version", "3.10", "--platform", "linux_x86_64"],
            {"version": "3.10", "platforms": ["linux_x86_64"]},
        ),
        (
            ["--python-version", "3.12", "--platform", "manylinux_2_28_x86_64"],
            {"version": "3.12", "platforms": ["manylinux_2_28_x86_64"]},
        ),
    ]:
        said = subprocess.run(
            [sys.executable, "-m", "pip", "debug", "--verbose", *options],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        pips = [
            line.strip()
            for line in said.partition("Compatible tags:")[2].splitlines()[1:]
            if line.startswith("  ")
        ]
        ours = _tags(**given)
        if "manylinux_2_28_x86_64" in given["platforms"]:
            assert [t for t in ours if t in pips] == pips
            assert all("manylinux" in t for t in set(ours) - set(pips))
        else:
            assert ours == pips


def test_the_markers_follow_the_machine() -> None:
    windows = dict(
        TargetPython(version="3.12", platforms=["win_amd64"]).applied_to(HERE).marker_environment()
    )
    assert (windows["python_version"], windows["python_full_version"]) == ("3.12", "3.12.0")
    assert (windows["sys_platform"], windows["platform_system"], windows["os_name"]) == (
        "win32",
        "Windows",
        "nt",
    )
    assert windows["platform_machine"] == "AMD64"
    mac = dict(TargetPython(platforms=["macosx_11_0_arm64"]).applied_to(HERE).marker_environment())
    assert (mac["sys_platform"], mac["platform_machine"]) == ("darwin", "arm64")
    linux = dict(
        TargetPython(version="3.9.7", platforms=["manylinux2014_aarch64"])
        .applied_to(HERE)
        .marker_environment()
    )
    assert (linux["sys_platform"], linux["platform_machine"], linux["python_full_version"]) == (
        "linux",
        "aarch64",
        "3.9.7",
    )
    pypy = dict(TargetPython(implementation="pp").applied_to(HERE).marker_environment())
    assert (pypy["implementation_name"], pypy["platform_python_implementation"]) == ("pypy", "PyPy")
    assert windows["implementation_version"] == "3.12.0"  # CPython's is its Python version
    for platform, system, machine in [
        ("win32", "win32", "x86"),
        ("win_arm64", "win32", "ARM64"),
        ("macosx_10_9_universal2", "darwin", "arm64"),
        ("macosx_10_9_intel", "darwin", "x86_64"),
        ("linux_armv7l", "linux", "armv7l"),
        ("musllinux_1_2_aarch64", "linux", "aarch64"),
        ("ios_13_0_arm64_iphoneos", "ios", "arm64"),
        ("android_24_arm64_v8a", "android", "aarch64"),
        ("android_24_x86", "android", "i686"),
    ]:
        said = TargetPython(platforms=[platform]).applied_to(HERE).marker_environment()
        assert (said["sys_platform"], said["platform_machine"]) == (system, machine), platform


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"version": "3.x"}, "not '3.x' \\(--python-version\\)"),
        ({"version": "3.12.1.4"}, "--python-version"),
        ({"implementation": "CPython"}, "not 'CPython' \\(--implementation\\)"),
        ({"platforms": ["Linux-x86_64"]}, "'Linux-x86_64' is not a tag"),
        ({"abis": ["cp3 12"]}, "is not a tag"),
        ({"platforms": "win_amd64"}, "sequences of tags"),
    ],
)
def test_a_value_no_wheel_could_carry_is_a_usage_error(given: dict[str, object], said: str) -> None:
    with pytest.raises(UsageError, match=said):
        TargetPython(**given)  # type: ignore[arg-type]


def test_ios_android_and_graalpy_as_pip_expands_them() -> None:
    ios = _tags(version="3.13", platforms=["ios_13_0_arm64_iphoneos"])
    assert {"cp313-cp313-ios_13_0_arm64_iphoneos", "cp313-cp313-ios_12_0_arm64_iphoneos"} < set(ios)
    android = _tags(version="3.13", platforms=["android_24_arm64_v8a"])
    assert {"cp313-cp313-android_24_arm64_v8a", "cp313-cp313-android_21_arm64_v8a"} < set(android)
    graal = _tags(
        version="3.11", implementation="graalpy", abis=["graalpy242_311_native"], platforms=["linux_x86_64"]
    )
    assert graal[0] == "graalpy311-graalpy242_311_native-linux_x86_64"


def test_the_abis_not_given_are_the_interpreters_own_for_its_own_version() -> None:
    """``--python`` a free-threaded 3.13 or a PyPy, ``--platform`` another machine: that interpreter's ABIs
    (pip, run by it, lists them), not those of the one running wheelstream."""
    import dataclasses

    for own, version in [
        (Tag("cp313", "cp313t", "linux_x86_64"), (3, 13)),
        (Tag("pp310", "pypy310_pp73", "linux_x86_64"), (3, 10)),
    ]:
        other = dataclasses.replace(
            HERE, tags=(own, Tag(own.interpreter, "none", "linux_x86_64")), version=version
        )
        tags = TargetPython(platforms=["manylinux_2_28_x86_64"]).applied_to(other).tags
        assert Tag(own.interpreter, own.abi, "manylinux_2_17_x86_64") in tags
        assert not any(tag.abi == "cp311" for tag in tags)


def test_a_version_given_as_empty_is_not_given() -> None:
    assert TargetPython(version="", platforms=["win_amd64"]).version is None
    assert TargetPython().version_info is None


def test_the_interpreter_keeps_its_path_and_its_files_layout() -> None:
    other = TargetPython(version="3.13", platforms=["win_amd64"]).applied_to(HERE)
    assert (other.executable, other.version, other.scheme) == (HERE.executable, HERE.version, HERE.scheme)
    assert other.described == "--python-version 3.13 --platform win_amd64"
    assert Tag("cp313", "cp313", "win_amd64") in other.supported


# -- through the command line and a real index -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "flavour"),
    [
        (["--python-version", "3.12", "--platform", "manylinux_2_28_x86_64"], FLAVOURS[0]),
        (["--python-version", "3.12", "--platform", "win_amd64"], FLAVOURS[1]),
        (["--python-version", "3.11", "--platform", "manylinux2014_x86_64"], FLAVOURS[2]),
        (
            ["--python-version", "3.13", "--platform", "macosx_14_0_arm64"],
            FLAVOURS[3],
        ),  # abi3, an older macOS
        (["--python-version", "313", "--platform", "musllinux_1_2_aarch64", "--abi", "cp313"], FLAVOURS[4]),
    ],
)
def test_download_chooses_the_file_for_the_machine(
    index: FaultServer, tmp_path: Path, options: list[str], flavour: str
) -> None:
    assert _chosen(index, tmp_path, *options) == flavour


def test_install_target_takes_the_machines_wheel_as_a_pip_lambda_recipe_writes_it(
    index: FaultServer, tmp_path: Path
) -> None:
    """``pip install --platform manylinux2014_x86_64 --target package --implementation cp --python-version 3.12
    --only-binary=:all:`` (AWS's recipe for a Lambda layer), as written."""
    target = tmp_path / "package"
    run = ws(
        "install",
        "demo==1.0",
        "--platform",
        "manylinux2014_x86_64",
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        "3.12",
        "--only-binary=:all:",
        "-i",
        f"{index.url}/simple/",
        cache=tmp_path / "c",
    )
    assert run.code == 0, run.err
    assert (target / "demo" / "flavour.txt").read_text() == FLAVOURS[0]
    plan = ws(
        "install", "demo==1.0", "--dry-run", "-t", str(tmp_path / "p"), "--platform", "win_amd64",
        "--python-version", "3.12", "-i", f"{index.url}/simple/", cache=tmp_path / "c",
    )  # fmt: skip
    assert plan.code == 0, plan.err
    assert not (tmp_path / "p").exists()


def test_a_wheel_for_another_machine_is_refused_before_anything_is_fetched(
    index: FaultServer, tmp_path: Path
) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "mine.txt").write_text("kept")
    before = snapshot(target)
    name = f"demo-1.0-{FLAVOURS[1]}.whl"
    for command in (["install", "-t", str(target)], ["download", "-d", str(tmp_path / "d")]):
        run = ws(
            *command, f"{index.url}/{name}", "--python-version", "3.12", "--platform", "manylinux_2_28_x86_64",
            cache=tmp_path / "c",
        )  # fmt: skip
        assert run.code == 1, run.err
        assert run.error_line(alone=True) == (
            f"error: {name}: tags {FLAVOURS[1]} are not supported by --python-version 3.12 --platform "
            "manylinux_2_28_x86_64"
        )
    assert snapshot(target) == before
    assert not (tmp_path / "d").exists()
    assert index.requests == []
    # without the options a download takes a wheel named outright whatever its tags, as it did
    run = ws("download", "-d", str(tmp_path / "d"), f"{index.url}/{name}", cache=tmp_path / "c")
    assert run.code == 0, run.err


def test_requires_python_is_the_machines(tmp_path: Path) -> None:
    """This interpreter is not 3.13: a wheel asking for it installs for a 3.13 machine, and one asking for less
    than 3.12 is refused for a 3.12 one, naming the machine."""
    for requires, version, code in [(">=3.13", "3.13", 0), ("<3.12", "3.12", 1)]:
        wheel = write(
            tmp_path / requires,
            wheel_bytes(
                demo_members({"demo-1.0.dist-info/METADATA": metadata(extra=f"Requires-Python: {requires}")})
            ),
        )
        run = ws(
            "install",
            str(wheel),
            "-t",
            str(tmp_path / f"t{code}"),
            "--python-version",
            version,
            cache=tmp_path / "c",
        )
        assert run.code == code, run.err
        if code:
            assert run.error_line(alone=True) == (
                f"error: {wheel.name}: requires a different Python: 3.12.0 not in '<3.12' (--python-version 3.12)"
            )
            assert not (tmp_path / f"t{code}").exists()
        else:
            assert (tmp_path / "t0" / "demo" / "__init__.py").is_file()


def test_a_download_for_a_machine_checks_requires_python_from_the_file(
    index: FaultServer, tmp_path: Path
) -> None:
    """pip download refuses it for the machine it downloads for; without the options, nothing is checked."""
    members = demo_members({"demo-1.0.dist-info/METADATA": metadata(extra="Requires-Python: <3.12")})
    url = index.add_file("demo-1.0-py3-none-any.whl", wheel_bytes(members))
    run = ws("download", url, "-d", str(tmp_path / "d"), "--python-version", "3.12", cache=tmp_path / "c")
    assert run.code == 1, run.err
    assert run.error_line(alone=True) == (
        "error: demo-1.0-py3-none-any.whl: requires a different Python: 3.12.0 not in '<3.12' "
        "(--python-version 3.12)"
    )
    assert not (tmp_path / "d").exists()
    for options in (["--python-version", "3.11"], []):
        run = ws("download", url, "-d", str(tmp_path / "d"), *options, cache=tmp_path / "c")
        assert run.code == 0, run.err
        assert (tmp_path / "d" / "demo-1.0-py3-none-any.whl").is_file()


def test_a_requirements_files_markers_are_the_machines(index: FaultServer, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text('demo==1.0 ; sys_platform == "win32" and python_version >= "3.12"\n')
    common = ("-r", str(requirements), "-i", f"{index.url}/simple/")
    windows = ws(
        "download",
        *common,
        "-d",
        str(tmp_path / "w"),
        "--platform",
        "win_amd64",
        "--python-version",
        "3.12",
        cache=tmp_path / "c",
    )
    assert windows.code == 0, windows.err
    assert [path.name for path in (tmp_path / "w").iterdir()] == [f"demo-1.0-{FLAVOURS[1]}.whl"]
    here = ws("download", *common, "-d", str(tmp_path / "h"), cache=tmp_path / "c")
    assert here.code == 0, here.err
    assert not (tmp_path / "h").exists()  # the marker is false for this machine: nothing to download


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            ["--platform", "win_amd64"],
            "error: --python-version, --platform, --implementation and --abi describe another machine: they "
            "need --target DIR",
        ),
        (["-t", "T", "--python-version", "3.99", "--compile-bytecode"], "which Python 3.99 would not read"),
        (["-t", "T", "--python-version", "3.99", "--compile-bytecode", "--dry-run"], "3.99 would not read"),
        (
            ["-t", "T", "--python-version", "three"],
            "error: a Python version such as 3.12, 312 or 3.12.1, not 'three' (--python-version)",
        ),
    ],
)
def test_options_that_cannot_hold_are_usage_errors(tmp_path: Path, options: list[str], said: str) -> None:
    options = [str(tmp_path / "t") if each == "T" else each for each in options]
    run = ws("install", "demo==1.0", "--no-index", *options, cache=tmp_path / "c")
    assert run.code == 2, run.err
    assert said in run.err
    assert not (tmp_path / "t").exists()


def test_the_library_takes_a_target_python(index: FaultServer, tmp_path: Path) -> None:
    layer = wheelstream.TargetPython(version="3.12", platforms=["win_amd64"])
    where = {"index_url": f"{index.url}/simple/", "cache_dir": tmp_path / "c", "target_python": layer}
    plan = wheelstream.plan_install(["demo==1.0"], tmp_path / "p", **where)  # type: ignore[arg-type]
    assert plan.install[0].filename == f"demo-1.0-{FLAVOURS[1]}.whl"
    result = wheelstream.install(["demo==1.0"], tmp_path / "t", **where)  # type: ignore[arg-type]
    assert result.wheels[0].filename == f"demo-1.0-{FLAVOURS[1]}.whl"
    env = wheelstream.find_environment(prefix=tmp_path / "prefix")
    with pytest.raises(UsageError, match="an environment has its own interpreter"):
        wheelstream.install(["demo==1.0"], environment=env, cache_dir=tmp_path / "c", target_python=layer)


def test_a_lock_selects_for_the_machine(index: FaultServer, tmp_path: Path) -> None:
    """PEP 751: each package's wheel chosen by the machine's tags, its marker evaluated for the machine."""
    import hashlib
    import json

    def entry(name: str, data: bytes) -> str:
        url, sha = json.dumps(index.url_for(name)), hashlib.sha256(data).hexdigest()
        return f'{{ url = {url}, size = {len(data)}, hashes = {{ sha256 = "{sha}" }} }}'

    def wheel(tag: str) -> str:
        return entry(*_flavoured(tag))

    extra_name, extra = (
        "winonly-1.0-py3-none-any.whl",
        wheel_archive({"winonly.py": b""}, name="winonly", version="1.0"),
    )
    index.add_file(extra_name, extra)
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'lock-version = "1.0"\ncreated-by = "tests"\n\n[[packages]]\nname = "demo"\nversion = "1.0"\n'
        f"wheels = [{wheel(FLAVOURS[1])}, {wheel(FLAVOURS[0])}]\n\n"
        '[[packages]]\nname = "winonly"\nversion = "1.0"\nmarker = "sys_platform == \'win32\'"\n'
        f"wheels = [{entry(extra_name, extra)}]\n"
    )
    for platform, flavour, winonly in [
        ("win_amd64", FLAVOURS[1], True),
        ("manylinux_2_28_x86_64", FLAVOURS[0], False),
    ]:
        target = tmp_path / platform
        run = ws(
            "install", "-r", str(lock), "-t", str(target), "--python-version", "3.12", "--platform", platform,
            cache=tmp_path / "c",
        )  # fmt: skip
        assert run.code == 0, run.err
        assert (target / "demo" / "flavour.txt").read_text() == flavour
        assert (target / "winonly.py").exists() == winonly
