"""Build the FlowLink Lambda layer: what ``sam build`` runs for ``FlowlinkLayer``.

``template.yaml`` builds the layer with ``BuildMethod: makefile``; the target in
``layers/flowlink/Makefile`` calls ``python -m scripts.build_layer --output $ARTIFACTS_DIR``.
The layer needs more than its own folder holds, so this script assembles it from the
repository:

* ``python/flowlink``: the shared package (``layers/flowlink/python/flowlink``);
* ``python/shield``: the analysis engine with its data (rule packs, default policy, the
  static semantic table in ``shield/semantic/model``). Only the distilled static table
  ships: the full sentence-transformers model is the ``semantic`` extra, never installed
  here (torch alone is far over the 250 MB unzipped limit of a function and its layers);
* the runtime dependencies: exactly ``[project].dependencies`` of ``pyproject.toml``, the
  one place their versions are declared, as binary wheels for the Lambda runtime (CPython
  and architecture given on the command line, Amazon Linux's glibc), resolved by pip.

Writes only under ``--output``; reads only ``pyproject.toml`` and the two package folders.
Fails (exit status 1, the reason on stderr) when pip fails or the layer would not fit in
Lambda. Needs Python >= 3.11 with pip (``PYTHON=... sam build`` picks another interpreter).
"""

from __future__ import annotations

import argparse
import compileall
import logging
import py_compile
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
# (import name, source folder): what the layer carries of this repository. edge_relay
# runs on customer hosts and the handlers live in each function's CodeUri, so neither is here.
PACKAGES = (
    ("flowlink", REPO / "layers" / "flowlink" / "python" / "flowlink"),
    ("shield", REPO / "shield"),
)
# Lambda's limit for a function's code plus all its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000
# Newest glibc of the Amazon Linux each Python runtime runs on (AL2: 2.26, AL2023: 2.34):
# a wheel built for a newer glibc installs fine and then fails to load in Lambda.
RUNTIME_GLIBC = {"3.9": 26, "3.10": 26, "3.11": 26, "3.12": 34, "3.13": 34, "3.14": 34}
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}
OLDEST_MANYLINUX_GLIBC = 17  # manylinux2014, the oldest tag Lambda-era wheels still ship

logger = logging.getLogger("build_layer")


def runtime_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The requirement strings of ``[project].dependencies``, in file order.

    Raises:
        OSError: ``pyproject.toml`` cannot be read.
        ValueError: it has no ``[project].dependencies`` list.
    """
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    dependencies = data.get("project", {}).get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        raise ValueError(f"{pyproject}: no [project].dependencies list")
    return [str(item) for item in dependencies]


def platform_tags(python_version: str, architecture: str) -> list[str]:
    """pip ``--platform`` values whose wheels load on the Lambda runtime.

    pip matches ``--platform`` tags literally (it only widens the legacy ``manylinux2014``
    alias), so every manylinux_2_N up to the runtime's glibc is listed.

    Raises:
        ValueError: an unknown runtime version or architecture.
    """
    if python_version not in RUNTIME_GLIBC:
        raise ValueError(f"unknown Lambda Python runtime {python_version!r}; known: {sorted(RUNTIME_GLIBC)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown Lambda architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    machine = ARCHITECTURES[architecture]
    newest = RUNTIME_GLIBC[python_version]
    tags = [f"manylinux2014_{machine}"]
    tags += [f"manylinux_2_{minor}_{machine}" for minor in range(newest, OLDEST_MANYLINUX_GLIBC - 1, -1)]
    return tags


def pip_install_command(site: Path, requirements: Iterable[str], python_version: str, architecture: str,
                        python: str = sys.executable) -> list[str]:
    """The pip command that installs ``requirements`` into ``site`` for the Lambda runtime."""
    abi = "cp" + python_version.replace(".", "")
    command = [
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(site), "--implementation", "cp", "--python-version", python_version, "--abi", abi,
        # Wheels only: an sdist would be built for *this* machine, not for Lambda.
        "--only-binary=:all:",
    ]
    for tag in platform_tags(python_version, architecture):
        command += ["--platform", tag]
    return [*command, *requirements]


def copy_packages(site: Path) -> None:
    """Copy ``flowlink`` and ``shield`` with every data file, without bytecode caches."""
    for name, source in PACKAGES:
        shutil.copytree(source, site / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def compile_bytecode(site: Path, python_version: str) -> bool:
    """Precompile ``.pyc`` files when this interpreter is the runtime's version.

    ``/opt`` is read-only in Lambda, so without them every cold start compiles every module
    it imports. ``unchecked-hash`` because a zip does not keep source mtimes exactly, which
    would make timestamp-checked files look stale. Returns whether it compiled.
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python_version:
        logger.warning("Python %s builds a %s layer: no bytecode precompiled (slower cold starts)",
                       sys.version.split()[0], python_version)
        return False
    return compileall.compile_dir(
        str(site), quiet=1, workers=0, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )


def tree_size(root: Path) -> int:
    """Bytes of every regular file under ``root`` (what Lambda counts once unzipped)."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink())


def build(output: Path, python_version: str, architecture: str) -> int:
    """Assemble the layer under ``output/python`` and return its unzipped size in bytes.

    Raises:
        subprocess.CalledProcessError: pip failed (a dependency without a compatible wheel, no network).
        ValueError: unknown runtime or architecture, or the layer is over Lambda's limit.
    """
    site = output / "python"
    site.mkdir(parents=True, exist_ok=True)
    subprocess.run(pip_install_command(site, runtime_requirements(), python_version, architecture), check=True)
    # Console scripts of the dependencies: nothing in Lambda runs them.
    shutil.rmtree(site / "bin", ignore_errors=True)
    copy_packages(site)
    compile_bytecode(site, python_version)
    size = tree_size(output)
    if size > LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise ValueError(f"layer is {size / 1e6:.1f} MB unzipped, over Lambda's "
                         f"{LAMBDA_UNZIPPED_LIMIT_BYTES / 1e6:.1f} MB for a function and its layers")
    return size


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="build_layer: %(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m scripts.build_layer", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="the layer's root ($ARTIFACTS_DIR)")
    parser.add_argument("--python-version", required=True, help="Lambda runtime's Python, e.g. 3.11")
    parser.add_argument("--architecture", required=True, choices=sorted(ARCHITECTURES))
    args = parser.parse_args(argv)
    try:
        size = build(args.output.resolve(), args.python_version, args.architecture)
    except (subprocess.CalledProcessError, ValueError, OSError) as exc:
        logger.error("%s", exc)
        return 1
    logger.info("layer for python%s/%s: %.1f MB unzipped (Lambda allows %.1f MB with the function code)",
                args.python_version, args.architecture, size / 1e6, LAMBDA_UNZIPPED_LIMIT_BYTES / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
