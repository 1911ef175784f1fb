"""The package layers: every import points downward, never up and never sideways (local imports included).

From the bottom up (the order of :data:`LAYERS`):
1. ``plumbing``: data, checkpoints, provenance, errors, devices;
2. ``models``: the ANN architectures;
3. ``ann``: the quantizer, the activations, ANN building, evaluation and the training loop;
4. ``conversion`` and ``direct`` (side by side): conversion and simulation; the direct-training neurons
   and spiking ResNets;
5. ``analysis`` and ``export`` (side by side): operation counts, diagnostics, plots, entropy; NIR;
6. ``pipelines``: the sweep and the training runs;
7. the API: ``ann2snn.api`` and the package root ``ann2snn``;
8. ``cli`` (and ``ann2snn.__main__``).

import-linter builds its graph from the ``ann2snn`` folder only, so it cannot see ``ann2snn.models`` and
``ann2snn.cli``, which ``pyproject.toml`` maps from the top-level ``models/`` and ``cli/`` folders. This
test reads every source file with :mod:`ast` instead, following that mapping, and sees imports inside
functions as well as at module level.
"""

from __future__ import annotations

import ast
import os
import tomllib

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: bottom first; packages in one tuple are side by side and may not import each other
LAYERS = [("plumbing",), ("models",), ("ann",), ("conversion", "direct"), ("analysis", "export"), ("pipelines",),
          ("api",), ("cli",)]


def package_dirs() -> dict[str, str]:
    """``{"ann2snn": "ann2snn", "ann2snn.models": "models", ...}`` from pyproject.toml."""
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as f:
        tool = tomllib.load(f)["tool"]["setuptools"]
    dirs = {name: name.replace(".", "/") for name in tool["packages"]}
    dirs.update(tool.get("package-dir", {}))
    return dirs


def source_modules() -> dict[str, str]:
    """``{dotted module name: file path}`` of every module of the installed package."""
    modules = {}
    for package, folder in package_dirs().items():
        for name in os.listdir(os.path.join(REPO_ROOT, folder)):
            if name.endswith(".py"):
                stem = name[:-3]
                modules[package if stem == "__init__" else f"{package}.{stem}"] = os.path.join(REPO_ROOT, folder, name)
    return modules


def imports_of(module: str, path: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every ``ann2snn`` import in the file, at any depth of the syntax tree.

    ``from ann2snn.x import y`` counts as importing ``ann2snn.x.y`` when that is a module, else ``ann2snn.x``."""
    is_package = path.endswith("__init__.py")
    parent = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parent.split(".")[: len(parent.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name == "ann2snn" or name.startswith("ann2snn.")]


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, package name) of an ``ann2snn`` module; the root and ``ann2snn.api`` are the API."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "api"  # the root re-exports the API: one package with ann2snn.api
    name = "cli" if name == "__main__" else name
    for i, group in enumerate(LAYERS):
        if name in group:
            return i, name
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def resolve(target: str, modules) -> str:
    """The module that an import target names: ``ann2snn.x.y`` is a module, or a name inside ``ann2snn.x``."""
    return target if target in modules else target.rpartition(".")[0]


def violations(modules: dict[str, str], known: set[str] | None = None) -> list[str]:
    """One line for each import in ``modules`` (name → file) that points up or sideways; ``known`` are the
    module names an import target can resolve to (default: those of ``modules``)."""
    known = set(modules) if known is None else known
    bad = []
    for module, path in sorted(modules.items()):
        here, pkg = layer_of(module)
        for line, target in sorted(imports_of(module, path)):
            target = resolve(target, known)
            there, other = layer_of(target)
            if other == pkg or there < here:
                continue
            what = "above it" if there > here else "beside it"
            bad.append(f"{os.path.relpath(path, REPO_ROOT)}:{line}: {module} imports {target}, {what}")
    return bad


def test_every_import_points_down():
    modules = source_modules()
    assert "ann2snn.models.vgg" in modules and "ann2snn.cli.main" in modules  # the mapped folders are seen
    assert violations(modules) == []


def test_the_check_sees_local_upward_and_sideways_imports(tmp_path):
    """The check itself: a local (in-function) upward import and a sideways one are both reported."""
    fake = tmp_path / "snn.py"
    fake.write_text("def f():\n    from ann2snn.analysis.opcount import OpCounter\n"
                    "import ann2snn.direct.mblif\nfrom ann2snn.plumbing import errors\n")
    known = {"ann2snn.conversion.snn", "ann2snn.analysis.opcount", "ann2snn.direct.mblif", "ann2snn.plumbing.errors"}
    found = violations({"ann2snn.conversion.snn": str(fake)}, known)
    assert [v.split(": ", 1)[1] for v in found] == [
        "ann2snn.conversion.snn imports ann2snn.analysis.opcount, above it",
        "ann2snn.conversion.snn imports ann2snn.direct.mblif, beside it",
    ]


@pytest.mark.parametrize("module, layer", [("ann2snn.plumbing.data", 0), ("ann2snn.models.vgg", 1),
                                           ("ann2snn.direct.spiking_resnet", 3), ("ann2snn", 6),
                                           ("ann2snn.cli.main", 7)])
def test_layer_of(module, layer):
    assert layer_of(module)[0] == layer
