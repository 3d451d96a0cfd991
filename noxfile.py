"""One nox session per package, plus minimal-install, lint, docs, bench and demo.

`nox -s tests` runs everything CI needs. Sessions use uv: its cache links the
multi-GB torch install into each fresh environment in seconds instead of
reinstalling it per session. vt-ops is compiled once per source state into a
wheel under .nox/_wheels and installed from there by every session.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "ci" / "constraints.txt"))

# package -> the vt packages it requires (install order follows the dependency graph).
PACKAGES: dict[str, tuple[str, ...]] = {
    "vt-ops": (),
    "vt-structures": ("vt-ops",),
    "vt-layers": ("vt-ops", "vt-structures"),
    "vt-modeling": ("vt-ops", "vt-structures", "vt-layers"),
    "vt-metrics": ("vt-ops",),
    "vt-engine": ("vt-ops", "vt-structures", "vt-layers", "vt-modeling", "vt-metrics"),
}
MINIMAL_PACKAGES = ("vt-ops", "vt-metrics")  # must install and work without torch


def _vt_ops_source_digest() -> str:
    pkg = ROOT / "packages" / "vt-ops"
    h = hashlib.sha256()
    files = [pkg / "CMakeLists.txt", pkg / "pyproject.toml", pkg / "README.md"]
    for sub in ("csrc", "src"):
        files += sorted(
            p for p in (pkg / sub).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    for f in files:
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    for var in ("VT_OPS_CUDA", "VT_OPS_CUDA_ARCHS"):
        h.update(f"{var}={os.environ.get(var, '')}".encode())
    return h.hexdigest()[:16]


def vt_ops_wheel(session: nox.Session) -> Path:
    """Build (once per source state) and return the vt-ops wheel."""
    out = ROOT / ".nox" / "_wheels" / _vt_ops_source_digest()
    wheels = sorted(out.glob("vt_ops-*.whl"))
    if not wheels:
        session.run(
            "uv",
            "build",
            "--wheel",
            "--out-dir",
            str(out),
            str(ROOT / "packages" / "vt-ops"),
            external=True,
        )
        wheels = sorted(out.glob("vt_ops-*.whl"))
    return wheels[-1]


def requirements(session: nox.Session, package: str, extras: str = "test") -> list[str]:
    """Install arguments for `package` with `extras` and its vt dependencies, from this tree."""
    reqs = []
    for name in (*PACKAGES[package], package):
        extra = f"[{extras}]" if name == package and extras else ""
        if name == "vt-ops":
            reqs.append(f"vt-ops{extra} @ {vt_ops_wheel(session).as_uri()}")
        else:
            reqs.append(f"{name}{extra} @ {(ROOT / 'packages' / name).as_uri()}")
    return reqs


def _all_packages(session: nox.Session, extras: str) -> list[str]:
    """Every vt package with `extras` (an extra a package lacks is ignored)."""
    reqs = [f"vt-ops[{extras}] @ {vt_ops_wheel(session).as_uri()}"]
    reqs += [
        f"{name}[{extras}] @ {(ROOT / 'packages' / name).as_uri()}"
        for name in PACKAGES
        if name != "vt-ops"
    ]
    return reqs


def _test_session(package: str):
    def run_tests(session: nox.Session) -> None:
        session.install(*CONSTRAINTS, *requirements(session, package))
        session.run(
            "python",
            "-c",
            f"import {package.replace('-', '_')} as m; print(m.__name__, m.__version__)",
        )
        session.run("pytest", str(ROOT / "packages" / package / "tests"), *session.posargs)

    run_tests.__doc__ = f"Run the {package} tests with only its own dependencies installed."
    return run_tests


TEST_SESSIONS = []
for _package in PACKAGES:
    _name = f"tests-{_package.replace('-', '_')}"
    nox.session(name=_name)(_test_session(_package))
    TEST_SESSIONS.append(_name)


@nox.session
@nox.parametrize("package", MINIMAL_PACKAGES)
def minimal(session: nox.Session, package: str) -> None:
    """Install one package in a fresh environment without torch and check it works on numpy."""
    session.install(*requirements(session, package, extras=""))
    session.run(
        "python",
        "-c",
        "import importlib.util as u; assert u.find_spec('torch') is None, 'torch leaked in'",
    )
    session.run("python", str(ROOT / "ci" / f"smoke_{package.replace('-', '_')}.py"))


# A CPU torch wheel on disk, older than the pinned torch: no torchvision build matches it.
OLD_TORCH_WHEEL = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")


@nox.session(name="torch-compat", python="3.11")
def torch_compat(session: nox.Session) -> None:
    """One vt-ops wheel, its tests under torch 2.13.0 (the wheel on disk; tests needing
    torchvision skip) and then under the pinned torch and torchvision. numpy alone is
    the minimal(package='vt-ops') session."""
    if not OLD_TORCH_WHEEL.is_file():
        session.error(f"torch-compat needs the torch 2.13.0 CPU wheel at {OLD_TORCH_WHEEL}")
    vt_ops = f"vt-ops @ {vt_ops_wheel(session).as_uri()}"
    tests = str(ROOT / "packages" / "vt-ops" / "tests")
    # the fuzz test at a tenth of its default examples: enough to cross the boundary
    env = {"VT_FUZZ_EXAMPLES": "10"}
    check = "import torch, vt_ops; print('torch', torch.__version__, 'vt_ops', vt_ops.__file__)"
    # the test oracles without torchvision/torchmetrics (they would pull another torch)
    session.install(vt_ops, str(OLD_TORCH_WHEEL), "pytest", "hypothesis", "shapely", "pycocotools")
    session.run("python", "-c", check + "; assert torch.__version__.startswith('2.13.0')")
    session.run("pytest", tests, "-q", *session.posargs, env=env)
    session.install(*CONSTRAINTS, "torch", "torchvision")
    session.run("python", "-c", check + "; assert not torch.__version__.startswith('2.13')")
    session.run("pytest", tests, "-q", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", str(ROOT))
    session.run("ruff", "format", "--check", str(ROOT))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors."""
    session.install(*CONSTRAINTS, "mkdocs", "mkdocs-material", "mkdocstrings[python]")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--config-file",
        str(ROOT / "mkdocs.yml"),
        "--site-dir",
        str(ROOT / "site"),
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run every package's benchmarks against their peers; tables to stdout, JSON to bench-results/."""
    session.install(
        *CONSTRAINTS,
        *requirements(session, "vt-engine", extras=""),
        "torch",
        "torchvision",
        "pycocotools",
    )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    scripts = sorted((ROOT / "packages").glob("*/benchmarks/bench_*.py"))
    for script in scripts:
        session.run(
            "python", str(script), "--json", str(out / f"{script.stem}.json"), *session.posargs
        )
    if not scripts:
        session.log("no benchmarks yet")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job (README's first command): train Mask R-CNN on the embedded shapes
    dataset, print its COCO AP and draw its predictions. Arguments after -- go to
    ``python -m vt_engine.demo`` (e.g. ``-- --max-iters 200``)."""
    session.install(*CONSTRAINTS, *requirements(session, "vt-engine", extras=""))
    session.run("python", "-m", "vt_engine.demo", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Everything CI runs: lint, the no-torch installs, every package's tests, one vt-ops
    build under two torch versions, docs."""
    session.notify("lint")
    for package in MINIMAL_PACKAGES:
        session.notify(f"minimal(package='{package}')")
    for name in TEST_SESSIONS:
        session.notify(name)
    session.notify("torch-compat")
    session.notify("docs")
