"""Local certificate files: private modes, reuse, renewal, atomic replacement in a fixed order."""

from __future__ import annotations

import os
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from certs import ServingFiles, ensure_local, generate_local
from certs.directory import write_atomic
from tests.certs.chains import START, load_bundle, verify_chain

DAY = timedelta(days=1)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def test_keys_are_0600_and_a_new_directory_0700(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "certs"

    files = ensure_local(directory, now=START)

    assert _mode(directory) == 0o700
    assert _mode(files.key) == 0o600
    assert _mode(directory / "ca.key") == 0o600
    assert _mode(files.cert) == 0o644
    assert _mode(files.ca) == 0o644


def test_files_have_the_names_of_a_tls_secret(tmp_path: Path) -> None:
    files = ensure_local(tmp_path, now=START)

    assert files == ServingFiles(
        ca=tmp_path / "ca.crt", cert=tmp_path / "tls.crt", key=tmp_path / "tls.key"
    )
    assert sorted(_contents(tmp_path)) == [".lock", "ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)

    ensure_local(tmp_path, now=START)

    assert _mode(tmp_path) == 0o755


def test_local_certificate_verifies_for_localhost_and_loopback_ip(tmp_path: Path) -> None:
    files = ensure_local(tmp_path, now=START)
    (leaf,) = load_bundle(files.cert)

    for host in ("localhost", "127.0.0.1"):
        assert verify_chain(leaf, load_bundle(files.ca), host=host, at=START + DAY)


def test_a_second_call_reuses_the_certificates_without_rewriting(tmp_path: Path) -> None:
    ensure_local(tmp_path, now=START)
    before = _contents(tmp_path)
    modified = {name: (tmp_path / name).stat().st_mtime_ns for name in before}

    ensure_local(tmp_path, now=START + 10 * DAY)

    assert _contents(tmp_path) == before
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in before} == modified


def test_serving_certificate_is_renewed_when_due_and_the_ca_kept(tmp_path: Path) -> None:
    ensure_local(tmp_path, now=START)
    before = _contents(tmp_path)

    ensure_local(tmp_path, now=START + 61 * DAY)
    after = _contents(tmp_path)

    assert after["ca.crt"] == before["ca.crt"]
    assert after["ca.key"] == before["ca.key"]
    assert after["tls.crt"] != before["tls.crt"]
    assert after["tls.key"] != before["tls.key"]


def test_changed_hosts_get_a_new_serving_certificate(tmp_path: Path) -> None:
    ensure_local(tmp_path, now=START)

    files = ensure_local(tmp_path, hosts=["guard.example.com"], now=START + DAY)
    (leaf,) = load_bundle(files.cert)

    assert verify_chain(leaf, load_bundle(files.ca), host="guard.example.com", at=START + DAY)


def test_files_are_replaced_ca_first_key_before_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[str] = []
    real_replace = os.replace

    def recording_replace(source: str | Path, target: str | Path) -> None:
        replaced.append(Path(target).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", recording_replace)

    ensure_local(tmp_path, now=START)
    first = list(replaced)
    replaced.clear()
    ensure_local(tmp_path, now=START + 61 * DAY)

    assert first == ["ca.crt", "ca.key", "tls.key", "tls.crt"]
    assert replaced == ["tls.key", "tls.crt"]


def test_atomic_write_leaves_no_temporary_files_and_sets_the_mode_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    real_replace = os.replace

    def checking_replace(source: str | Path, target: str | Path) -> None:
        modes.append(_mode(Path(source)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", checking_replace)

    write_atomic(tmp_path / "tls.key", b"secret", mode=0o600)
    write_atomic(tmp_path / "tls.key", b"secret2", mode=0o600)

    assert modes == [0o600, 0o600]
    assert [path.name for path in tmp_path.iterdir()] == ["tls.key"]
    assert (tmp_path / "tls.key").read_bytes() == b"secret2"


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "tls.crt"
    target.write_bytes(b"old")

    def failing_fsync(descriptor: int) -> None:
        raise OSError(28, "no space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)

    with pytest.raises(OSError, match="no space"):
        write_atomic(target, b"new", mode=0o644)

    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["tls.crt"]


def test_generate_replaces_ca_and_certificate_in_place(tmp_path: Path) -> None:
    first = generate_local(tmp_path, hosts=["localhost"], now=START)
    before = _contents(tmp_path)

    second = generate_local(tmp_path, hosts=["localhost"], now=START)

    assert second == first
    after = _contents(tmp_path)
    assert all(after[name] != before[name] for name in ("ca.crt", "ca.key", "tls.crt", "tls.key"))


def test_concurrent_callers_end_with_one_consistent_ca(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    results: list[ServingFiles] = []
    callers = [
        threading.Thread(target=lambda: results.append(ensure_local(directory, now=START)))
        for _ in range(8)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()

    (leaf,) = load_bundle(directory / "tls.crt")
    assert len(results) == 8
    assert len(load_bundle(directory / "ca.crt")) == 1
    assert verify_chain(leaf, load_bundle(directory / "ca.crt"), host="localhost", at=START)
