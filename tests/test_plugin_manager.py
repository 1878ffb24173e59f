"""Issue 7: the plugin installs, works and uninstalls the way napari users do it.

End to end, in a fresh virtual environment that has only napari, a Qt binding and
napari-plugin-manager (what a user's napari has):

1. build the wheel of this repository;
2. open a real napari viewer under Xvfb, open Plugins > Install/Uninstall Plugins...
   (napari-plugin-manager's dialog), drop the wheel on it / type its path into the
   direct-entry field, press Install and wait for the installer queue;
3. in new processes: npe2 discovers the plugin (`npe2 list`), `npe2 validate
   napari-kmeans-quantize --imports` passes, and the widget docks as with
   `napari -w napari-kmeans-quantize`;
4. uninstall through the installed-plugins list of the same dialog (in a new napari
   session, as after the restart the dialog asks for), then in a new process npe2
   no longer finds the plugin and napari still opens and draws.

The GUI work happens in tests/_plugin_manager_child.py, run with the venv's Python.
The fast check that npe2's wheel inspection reads the manifest back lives in
tests/test_packaging.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from npe2 import PluginManifest

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_plugin_manager_child.py")
DIST = "napari-kmeans-quantize"

# Generous: the first run on a machine downloads napari, PyQt6, scikit-learn, ...
PIP_TIMEOUT_S = 1200
INSTALL_TIMEOUT_S = 900  # the dialog's pip run (the plugin's own dependencies)
GUI_TIMEOUT_S = 180  # a phase that only opens napari


def _tail(text: str | None, limit: int = 12000) -> str:
    text = text or ""
    return (
        text
        if len(text) <= limit
        else f"[... {len(text) - limit} chars cut]\n{text[-limit:]}"
    )


class _Run:
    """A finished (or killed) subprocess with everything needed to explain it."""

    def __init__(self, what, cmd, returncode, stdout, stderr, seconds, timed_out):
        self.what, self.cmd, self.returncode = what, cmd, returncode
        self.stdout, self.stderr = stdout, stderr
        self.seconds, self.timed_out = seconds, timed_out

    def explain(self) -> str:
        status = "TIMED OUT" if self.timed_out else f"exit code {self.returncode}"
        return (
            f"\n=== {self.what}: {status} after {self.seconds:.1f}s\n"
            f"$ {' '.join(map(str, self.cmd))}\n"
            f"--- stdout ---\n{_tail(self.stdout)}\n"
            f"--- stderr ---\n{_tail(self.stderr)}\n"
        )


def _run(what: str, cmd: list, *, env: dict | None, timeout: float, cwd: Path) -> _Run:
    """Run ``cmd`` in its own process group; on timeout kill the whole group
    (pip started by the dialog included)."""
    t = time.monotonic()
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    run = _Run(what, cmd, proc.returncode, out, err, time.monotonic() - t, timed_out)
    print(f"[{run.seconds:6.1f}s] {what}: exit {run.returncode}")
    return run


def _check(run: _Run) -> _Run:
    if run.timed_out or run.returncode != 0:
        pytest.fail(run.explain(), pytrace=False)
    return run


class _Phase:
    """Result of one child phase: its JSON report plus the process' output."""

    def __init__(self, run: _Run, report: dict):
        self.run, self.report = run, report

    def __getitem__(self, key):
        if key not in self.report:
            pytest.fail(f"the child reported no {key!r}{self.explain()}", pytrace=False)
        return self.report[key]

    def explain(self) -> str:
        report = dict(self.report)
        log = report.pop("installer_log", None)
        text = self.run.explain()
        text += f"--- child report ---\n{json.dumps(report, indent=1, default=str)}\n"
        if log is not None:
            text += f"--- plugin manager installer log ---\n{_tail(log)}\n"
        return text


@pytest.mark.slow
def test_install_use_uninstall_through_napari_plugin_manager(tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.fail(
            "needs an X display: run under pytest-xvfb (`-p xvfb`) or xvfb-run",
            pytrace=False,
        )
    t_start = time.monotonic()
    expected = PluginManifest.from_file(ROOT / "napari.yaml")
    napari_version = metadata.version("napari")
    work = tmp_path / "work"  # cwd of every child: never the repository
    work.mkdir()
    env_dir = tmp_path / "venv"
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env.update(
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(env_dir),
        # napari settings (disabled plugins, ...) of this run only.
        NAPARI_CONFIG=str(tmp_path / "napari-settings.yaml"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
        PM_TEST_INSTALL_TIMEOUT=str(INSTALL_TIMEOUT_S),
    )

    def child(phase: str, *args, timeout: float = GUI_TIMEOUT_S) -> _Phase:
        out = tmp_path / f"{phase}.json"
        run = _run(
            f"child phase {phase!r}",
            [py, CHILD, phase, out, *args],
            env=env,
            timeout=timeout,
            cwd=work,
        )
        report = json.loads(out.read_text()) if out.exists() else {}
        result = _Phase(run, report)
        if run.timed_out or run.returncode != 0 or "error" in report:
            pytest.fail(result.explain(), pytrace=False)
        return result

    def npe2_list(when: str) -> dict[str, str]:
        """`npe2 list` of the venv, in a new process: {plugin name: version}."""
        run = _check(
            _run(
                f"npe2 list ({when})",
                [bindir / "npe2", "list", "--fields", "name,version", "-f", "json"],
                env=env,
                timeout=120,
                cwd=work,
            )
        )
        try:
            return {p["name"]: p["version"] for p in json.loads(run.stdout)}
        except (ValueError, KeyError, TypeError):
            pytest.fail(run.explain(), pytrace=False)

    # 1. The wheel, as a release builds it.
    dist = tmp_path / "dist"
    _check(
        _run(
            "build wheel",
            [sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT],
            env=None,
            timeout=PIP_TIMEOUT_S,
            cwd=work,
        )
    )
    (wheel,) = dist.glob("*.whl")
    version = wheel.name.split("-")[1]

    # 2. A fresh environment with what a user's napari has; pip reuses its cache.
    _check(
        _run(
            "python -m venv",
            [sys.executable, "-m", "venv", env_dir],
            env=None,
            timeout=300,
            cwd=work,
        )
    )
    _check(
        _run(
            "pip install napari, PyQt6, napari-plugin-manager",
            [
                py,
                "-m",
                "pip",
                "install",
                f"napari=={napari_version}",
                "PyQt6",
                "napari-plugin-manager",
            ],
            env=env,
            timeout=PIP_TIMEOUT_S,
            cwd=work,
        )
    )
    assert DIST not in npe2_list("before"), "the fresh environment has the plugin"

    # 3. Install through the dialog's direct-entry field.
    inst = child("install", wheel, timeout=INSTALL_TIMEOUT_S + GUI_TIMEOUT_S)
    assert DIST not in inst["installed_before"], inst.explain()
    assert inst["text_after_drop"] == str(wheel), inst.explain()  # drag and drop
    assert inst["text_typed"] == str(wheel), inst.explain()  # typed path
    assert inst["exit_codes"] == [0], inst.explain()
    (job,) = inst["jobs"]
    assert job["action"] == "install" and job["pkgs"] == [str(wheel)], inst.explain()
    assert DIST in inst["installed_after_refresh"], inst.explain()
    assert "restart" in (inst["restart_warning"] or "").lower(), inst.explain()

    # 4. New processes of that environment: discovery, validation, docking.
    assert npe2_list("installed").get(DIST) == version

    validated = _check(
        _run(
            "npe2 validate --imports",
            [bindir / "npe2", "validate", DIST, "--imports"],
            env=env,
            timeout=300,
            cwd=work,
        )
    )
    assert "invalid" not in validated.stdout.lower(), validated.explain()

    check = child("check")
    assert check["npe2_discovered"], check.explain()
    # The installed package is the wheel's, in the venv, not this checkout.
    assert str(env_dir) in check["module_file"], check.explain()
    assert wheel.name in (check["direct_url"] or ""), check.explain()
    manifest = check["manifest"]
    assert manifest["display_name"] == expected.display_name, check.explain()
    assert manifest["categories"] == ["Image Processing"], check.explain()
    assert manifest["visibility"] == "public", check.explain()
    widget_names = [w.display_name for w in expected.contributions.widgets or []]
    assert manifest["widgets"] == widget_names, check.explain()
    assert any(
        name in text for name in widget_names for text in check["plugins_menu"]
    ), check.explain()
    dock = check["dock"]
    assert dock["visible"], check.explain()
    assert dock["widget_type"].startswith("napari_kmeans_quantize."), check.explain()
    assert any(DIST in title for title in dock["dock_widgets"]), check.explain()

    # 5. Uninstall through the dialog's installed-plugins list...
    uninst = child("uninstall", timeout=INSTALL_TIMEOUT_S + GUI_TIMEOUT_S)
    assert DIST in uninst["installed_before"], uninst.explain()
    assert uninst["action_button_text"] == "Uninstall", uninst.explain()
    assert uninst["exit_codes"] == [0], uninst.explain()
    (job,) = uninst["jobs"]
    assert job["action"] == "uninstall" and job["pkgs"] == [DIST], uninst.explain()
    assert DIST not in uninst["installed_after"], uninst.explain()

    # ... and in a new process the plugin is gone while napari still works.
    after = child("after")
    assert not after["npe2_discovered"], after.explain()
    assert not after["distribution_installed"], after.explain()
    assert not any(
        name in text for name in widget_names for text in after["plugins_menu"]
    ), after.explain()
    assert after["layers"] == ["still-works"], after.explain()
    assert after["screenshot"]["grey_levels"] >= 2, after.explain()
    assert DIST not in npe2_list("after uninstall")

    print(f"end-to-end plugin-manager test: {time.monotonic() - t_start:.1f}s")
    # The venv (~1 GB) stays under tmp_path: pytest keeps only the last 3 runs'
    # temporary directories. Removing it here took 15-125 s of disk time.
