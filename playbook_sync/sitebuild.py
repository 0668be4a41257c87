"""The playbook's own Docusaurus build, run on a tree in a temporary checkout (the opt-in build gate).

Our MDX lint (validate.py) is the fast first line; it knows the hazards we have met. The site's
own build is the ground truth: it compiles every page with the site's MDX version, plugins and
components, then renders each page (a bare `{name}` compiles, and fails only when rendered).

node_modules is installed once per package.json (+ lock file) into a cache directory and linked
into each temporary checkout, so a gate costs one build, not one install. Webpack's persistent
cache is switched off: it lives in node_modules/.cache, which every checkout shares, and a cache
written for one tree must not answer for another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from playbook_sync.sops import Problem, read_frontmatter

log = logging.getLogger(__name__)
_SKIP_DIRS = {".git", "node_modules", "build", ".docusaurus", ".cache"}
# Pages Docusaurus names when rendering or link checking fails: `pathname "/x"`, `- "/x"`, `source page path = /x`.
_ROUTE = re.compile(r'(?:pathname "|^\s*- "|source page path = )(/[^"\s:]*)', re.MULTILINE)
_ERROR = re.compile(r"^(?:\[cause\]: |- )?(\w*Error: .+|MDX compilation failed .+|Broken link on .+)$|^Cause: (.+)$")
_GENERIC = ("Unable to build website", "static site generation failed", "Can't render static file", "AggregateError")


class BuildUnavailable(Exception):
    """The tree is not a Docusaurus site, or Node/npm is missing: the build gate cannot run."""


@dataclass
class BuildResult:
    """A build's outcome; `output` is its combined stdout/stderr."""

    ok: bool
    output: str
    routes: list[str] = field(default_factory=list)

    def summary(self, limit: int = 400) -> str:
        """The build's own error lines, without stack frames or the generic wrappers."""
        found: list[str] = []
        for line in self.output.splitlines():
            match = _ERROR.match(line.strip())
            if match and not any(g in line for g in _GENERIC):
                text = (match.group(1) or match.group(2)).strip()
                if text not in found:
                    found.append(text)
        text = "; ".join(found[:3]) or (self.output.strip().splitlines() or ["no output"])[-1]
        return text[:limit]


def site_package(files: Mapping[str, bytes]) -> dict:
    """The root package.json when it depends on @docusaurus/core; else BuildUnavailable."""
    raw = files.get("package.json")
    if raw is None:
        raise BuildUnavailable("the playbook repository has no package.json at its root")
    try:
        package = json.loads(raw)
    except ValueError as exc:
        raise BuildUnavailable(f"package.json is not valid JSON: {exc}") from None
    deps = {**(package.get("dependencies") or {}), **(package.get("devDependencies") or {})}
    if "@docusaurus/core" not in deps:
        raise BuildUnavailable("package.json does not depend on @docusaurus/core")
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise BuildUnavailable(f"{tool} is not installed (needed for the Docusaurus build)")
    return package


def node_modules(files: Mapping[str, bytes], cache_dir: Path, timeout: float = 900) -> Path:
    """node_modules for this package.json (+ lock), installed once into cache_dir and reused."""
    site_package(files)
    lock = files.get("package-lock.json")
    key = hashlib.sha256(files["package.json"] + b"\0" + (lock or b"")).hexdigest()[:16]
    target = cache_dir / key
    if (target / "node_modules").is_dir():
        return target / "node_modules"
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = cache_dir / f".{key}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    (work / "package.json").write_bytes(files["package.json"])
    if lock is not None:
        (work / "package-lock.json").write_bytes(lock)
    # --ignore-scripts: install-time scripts of a repository we only build are not ours to run.
    cmd = ["npm", "ci" if lock is not None else "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise BuildUnavailable(f"npm {cmd[1]} failed: {(done.stderr or done.stdout).strip()[-400:]}")
    try:
        work.rename(target)  # atomic: a concurrent install of the same key simply loses the race
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
    return target / "node_modules"


def _write_tree(root: Path, files: Mapping[str, bytes | None]) -> None:
    for path, content in files.items():
        parts = PurePosixPath(path).parts
        if content is None or not parts or PurePosixPath(path).is_absolute() or ".." in parts or parts[0] in _SKIP_DIRS:
            continue  # paths come from git trees already confined; this keeps the checkout so too
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def build(files: Mapping[str, bytes | None], cache_dir: Path, timeout: float = 900) -> BuildResult:
    """Run the site's build (its `build` script, else `docusaurus build`) on files in a temporary checkout."""
    package = site_package(files)  # type: ignore[arg-type]
    modules = node_modules(files, cache_dir, timeout)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="playbook-sync-site-") as tmp:
        root = Path(tmp) / "site"
        root.mkdir()
        _write_tree(root, files)
        (root / "node_modules").symlink_to(modules, target_is_directory=True)
        script = (package.get("scripts") or {}).get("build")
        cmd = ["npm", "run", "build"] if script else [str(modules / ".bin" / "docusaurus"), "build"]
        env = {**os.environ, "DOCUSAURUS_NO_PERSISTENT_CACHE": "1", "CI": "true", "NO_COLOR": "1", "FORCE_COLOR": "0"}
        try:
            done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return BuildResult(False, f"Error: the site build did not finish within {timeout:.0f} s")
        output = (done.stdout + "\n" + done.stderr).replace(str(root) + "/", "")
    return BuildResult(done.returncode == 0, output, sorted(set(_ROUTE.findall(output))))


def _names(path: str, content: bytes) -> set[str]:
    """The last URL segments a doc may be served under: its slug, its id, its file name."""
    stem = PurePosixPath(path).stem
    names = {stem, re.sub(r"^\d+[-_]", "", stem)}
    # The SOPs' own reader (bounded nesting, every PyYAML error a Problem): a doc whose frontmatter does not
    # parse is still matched by its file name.
    front = read_frontmatter(path, content.decode("utf-8", "replace").splitlines(keepends=True))
    if not isinstance(front, Problem):
        for key in ("slug", "id"):
            if isinstance(front.meta.get(key), str | int):
                names.add(str(front.meta[key]).rstrip("/").rsplit("/", 1)[-1])
    return {n for n in names if n}


def blame(result: BuildResult, changed: Mapping[str, bytes]) -> list[str]:
    """The changed docs a failed build points at: named in its output, or served at a failing page."""
    segments = {route.rstrip("/").rsplit("/", 1)[-1] for route in result.routes}
    return sorted(path for path, content in changed.items()
                  if path in result.output or (segments & _names(path, content)))


def read_site(root: Path) -> dict[str, bytes]:
    """Every file of a checked-out site on disk (build output and node_modules left out)."""
    out: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):  # pruned walk: never descends into node_modules
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not (Path(folder) / d).is_symlink())
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                out[path.relative_to(root).as_posix()] = path.read_bytes()
    return dict(sorted(out.items()))
