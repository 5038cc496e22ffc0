"""The NHS.UK design system's stylesheet, scripts and images, and axe-core for the
accessibility tests: fetched from the npm registry at pinned versions, each tarball checked
against the sha512 ``dist.integrity`` the registry published for it, unpacked under var/assets/.

``python -m web.assets`` (``make assets``) writes::

    var/assets/nhsuk/nhsuk-frontend.min.css   the stylesheet (its web fonts removed: see below)
    var/assets/nhsuk/nhsuk-frontend.min.js    the components' scripts (an ES module)
    var/assets/images/...                     icons and logos the stylesheet names (/assets/images/)
    var/assets/manifest.json
    var/assets/axe/axe.min.js                 axe-core, injected by the browser tests only
    var/assets/.stamp                         the versions, once everything is in place

The stylesheet's ``@font-face`` rules load the Frutiger web font from assets.nhs.uk, which the
Content-Security-Policy (``font-src 'self'``) refuses; they are removed, so pages use the
design system's fallback (Arial) and the browser logs no violation.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSET_DIR = Path(os.environ.get("PEERWATCH_ASSET_DIR") or ROOT / "var" / "assets")
STAMP = ".stamp"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's dist.integrity for this version's tarball
    files: tuple[tuple[str, str], ...]  # (path in the tarball, or a folder ending "/"; destination)

    @property
    def url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name}-{self.version}.tgz"


PACKAGES = (
    Package(
        "nhsuk-frontend",
        "10.6.1",
        "sha512-PZorqQZjZx/A26yJoskCL9z0ib6AtkAyF0o4K/RHr8zRrJyXrUOCnMbjy0VNXsGO4tfTNMwqlkwATKs4a0xayw==",
        (
            ("package/dist/nhsuk/nhsuk-frontend.min.css", "nhsuk/nhsuk-frontend.min.css"),
            ("package/dist/nhsuk/nhsuk-frontend.min.js", "nhsuk/nhsuk-frontend.min.js"),
            ("package/dist/nhsuk/assets/images/", "images/"),
            ("package/dist/nhsuk/assets/manifest.json", "manifest.json"),
        ),
    ),
    Package(
        "axe-core",
        "4.14.1",
        "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==",
        (("package/axe.min.js", "axe/axe.min.js"), ("package/LICENSE", "axe/LICENSE")),
    ),
)

_FONT_FACE = re.compile(r"@font-face\{[^}]*https?://[^}]*\}")


class AssetError(Exception):
    pass


def stamp_text() -> str:
    return "".join(f"{p.name}@{p.version} {p.integrity}\n" for p in PACKAGES)


def assets_ready(where: Path | None = None) -> bool:
    """True when ``make assets`` has run for these versions."""
    stamp = (where or ASSET_DIR) / STAMP
    try:
        return stamp.read_text() == stamp_text()
    except OSError:
        return False


def verify(data: bytes, integrity: str) -> None:
    """Refuse ``data`` unless its sha512 is the published ``integrity`` (sha512-<base64>)."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise AssetError(f"unsupported integrity {integrity!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise AssetError(f"integrity mismatch: expected sha512-{expected}, got sha512-{actual}")


def fetch(url: str, timeout: float = 60.0) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "peerwatch-assets"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data: bytes = response.read()
        return data


def _safe_name(name: str) -> bool:
    return not (name.startswith("/") or ".." in Path(name).parts)


def extract(package: Package, data: bytes, dest: Path) -> list[Path]:
    """Write the package's chosen files under ``dest``; returns what was written."""
    written: list[Path] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile() and _safe_name(m.name)}
        for source, target in package.files:
            chosen = (
                [(n, target + n[len(source) :]) for n in members if n.startswith(source)]
                if source.endswith("/")
                else [(source, target)]
            )
            if not chosen or chosen[0][0] not in members:
                raise AssetError(f"{package.name}@{package.version} has no {source}")
            for name, out in chosen:
                handle = tar.extractfile(members[name])
                assert handle is not None
                content = handle.read()
                if out.endswith(".css"):
                    content = _FONT_FACE.sub("", content.decode()).encode()
                path = dest / out
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                written.append(path)
    return written


def install(dest: Path = ASSET_DIR, fetcher=fetch) -> None:
    """Download, verify and unpack every package into ``dest`` (replaced whole, atomically enough:
    a new folder beside it, renamed into place), then write the stamp."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".assets-", dir=dest.parent))
    try:
        for package in PACKAGES:
            try:
                data = fetcher(package.url)
            except OSError as e:
                raise AssetError(f"could not download {package.url}: {e}") from None
            try:
                verify(data, package.integrity)
            except AssetError as e:
                raise AssetError(f"{package.name}@{package.version}: {e}") from None
            extract(package, data, staging)
        (staging / STAMP).write_text(stamp_text())
        staging.chmod(0o755)  # mkdtemp makes it private; a reverse proxy may serve these files
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def main() -> int:
    if assets_ready():
        (ASSET_DIR / STAMP).touch()  # newer than web/assets.py again: make has nothing left to do
        print(f"assets up to date in {ASSET_DIR}")
        return 0
    try:
        install()
    except (AssetError, tarfile.TarError) as e:
        print(f"peerwatch assets: {e}", file=sys.stderr)
        return 1
    print(f"assets installed in {ASSET_DIR}: " + ", ".join(f"{p.name} {p.version}" for p in PACKAGES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
