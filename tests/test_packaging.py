"""The package as users install it: manifest discovery, wheel/sdist contents, imports."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]
DIST = "napari-kmeans-quantize"


def _contents(manifest: PluginManifest) -> dict:
    # package_metadata comes from whichever install npe2 looked at; compare the rest.
    return manifest.model_dump(exclude={"package_metadata"})


def test_manifest_is_valid_and_matches_distribution_name():
    manifest = PluginManifest.from_file(ROOT / "napari.yaml")
    assert manifest.name == DIST
    assert manifest.display_name
    assert "Image Processing" in manifest.categories
    assert manifest.contributions.widgets


def test_installed_distribution_exposes_the_top_level_manifest():
    # Holds for an editable install through the committed symlink in the package.
    installed = PluginManifest.from_distribution(DIST)
    assert _contents(installed) == _contents(
        PluginManifest.from_file(ROOT / "napari.yaml")
    )


def test_every_command_imports():
    # `npe2 validate --imports`: every python_name resolves.
    PluginManifest.from_distribution(DIST).validate_imports()


def test_npe2_discovers_the_plugin():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    assert DIST in pm._manifests


def test_import_pulls_in_no_qt_or_napari():
    code = (
        "import sys, napari_kmeans_quantize as k; "
        "k.quantize; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'PyQt6', 'PyQt5', 'PySide6', 'qtpy', 'magicgui', 'vispy'}); "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.slow
def test_wheel_and_sdist_contain_the_manifest(tmp_path):
    # `python -m build` makes the sdist, then the wheel *from* the sdist, as a
    # release does; both must carry napari.yaml.
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "napari_kmeans_quantize/napari.yaml" in names
        text = zf.read("napari_kmeans_quantize/napari.yaml").decode()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "napari.manifest" in zf.read(entry_points).decode()
        # Tests are not shipped as a top-level package.
        assert not any(n.startswith("tests/") for n in names)
    assert text == (ROOT / "napari.yaml").read_text()
    # The code path the napari plugin index uses to read a wheel's manifest.
    from npe2._inspection._fetch import get_manifest_from_wheel

    manifest = get_manifest_from_wheel(wheel)
    assert manifest.name == DIST
    assert _contents(manifest) == _contents(
        PluginManifest.from_file(ROOT / "napari.yaml")
    )


def test_readme_images_render_outside_the_repository():
    # The napari hub and PyPI show README.md on their own sites, where a relative
    # path to docs/ leads nowhere: every image is an absolute URL into this
    # repository's main branch, naming a file that is committed here.
    import re
    import tomllib

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert images, "README.md should show the widget in a screenshot"
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    repo = urls["Source Code"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repo}/main/"
    for url in images:
        assert url.startswith(prefix), url
        assert (ROOT / url.removeprefix(prefix)).is_file(), url


# Import name -> distribution, where they differ.
_DISTRIBUTION_OF = {
    "skimage": "scikit-image",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
}
# Imported only inside functions that need the optional extra ("dask").
_OPTIONAL = {"dask", "distributed"}


def _declared(requirements: list[str]) -> set[str]:
    import re

    return {
        re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower() for req in requirements
    }


def test_declared_dependencies_are_the_imported_ones():
    import ast
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    stdlib = sys.stdlib_module_names
    imported = set()
    for path in (ROOT / "src" / "napari_kmeans_quantize").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top != "napari_kmeans_quantize":
                    imported.add(_DISTRIBUTION_OF.get(top, top).lower())
    declared = _declared(project["dependencies"])
    assert imported - _OPTIONAL == declared
    extras = project["optional-dependencies"]
    assert {"dask"} <= _declared(extras["dask"])
    # Qt bindings come with napari's install, not with the plugin (see pyproject).
    assert "pyqt6" not in declared


def test_the_version_is_written_once():
    import tomllib

    import napari_kmeans_quantize

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    init = (ROOT / "src" / "napari_kmeans_quantize" / "__init__.py").read_text()
    assert f'__version__ = "{napari_kmeans_quantize.__version__}"' in init


# Private names the napari side and the command line still import from public
# modules; each has a public replacement (metrics.has_ciede2000,
# metrics.check_data_range, metrics.size_report(result), kmeans.kernels_compiled)
# and goes from this list when its caller switches.
_LEGACY_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


def _package_imports() -> dict[str, set[tuple[str, str]]]:
    """For every module of the package, the (module, name) pairs it imports from
    the package at run time (type-checking-only imports left out)."""
    import ast

    src = ROOT / "src"
    out: dict[str, set[tuple[str, str]]] = {}
    for path in (src / "napari_kmeans_quantize").rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        name = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for n in ast.walk(node))
        found = out.setdefault(name, set())
        for node in ast.walk(tree):
            if (
                not isinstance(node, ast.ImportFrom)
                or node.level == 0
                or id(node) in skip
            ):
                continue
            base = parts if is_pkg else parts[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add((target, alias.name))
    return out


def _short(module: str) -> str:
    return module.removeprefix("napari_kmeans_quantize").lstrip(".")


def test_no_private_name_crosses_between_public_modules():
    imports = _package_imports()
    crossing = set()
    for module, pairs in imports.items():
        for target, name in pairs:
            full = f"{target}.{name}"
            private_target = any(p.startswith("_") for p in _short(target).split("."))
            if full in imports or not name.startswith("_") or name.startswith("__"):
                continue  # a module, a public name or a dunder
            if not private_target:
                crossing.add((_short(module), _short(target), name))
    assert crossing == _LEGACY_PRIVATE_IMPORTS


def test_no_import_cycle():
    imports = _package_imports()
    graph = {
        m: {f"{t}.{n}" if f"{t}.{n}" in imports else t for t, n in pairs} - {m}
        for m, pairs in imports.items()
    }
    # A package's __init__ importing its own submodules is no cycle.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt in graph and not state.get(nxt):
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in graph:
        if not state.get(module):
            visit(module, [module])
