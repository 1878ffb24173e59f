"""Child process of tests/test_plugin_manager.py; runs *inside* the fresh venv.

It drives a real napari viewer and napari-plugin-manager's dialog the way a person
does: Plugins > Install/Uninstall Plugins..., type (or drop) a wheel path into the
direct-entry field and press Install, or press Uninstall on an entry of the
installed-plugins list. It uses only the standard library and what the venv has
(napari, qtpy, napari-plugin-manager), never this repository's code.

Usage: python _plugin_manager_child.py PHASE RESULT_JSON [ARG]
  install WHEEL   install the wheel through the dialog's direct-entry field
  check           npe2 discovery and docking the plugin's widget (`napari -w`)
  uninstall       uninstall through the installed-plugins list of the dialog
  after           the plugin is gone and a viewer still opens

Each phase writes what it saw to RESULT_JSON (the parent asserts on it) and exits
0 when it ran to the end; a Python error exits 1 with a traceback on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from importlib import metadata

DIST = "napari-kmeans-quantize"
# pip can take minutes on a cold cache: scikit-learn, scikit-image, matplotlib...
INSTALL_TIMEOUT_S = float(os.environ.get("PM_TEST_INSTALL_TIMEOUT", "900"))
UI_TIMEOUT_S = 60.0

result: dict = {"phase": None, "events": []}


def log(msg: str) -> None:
    stamp = f"[child {time.monotonic() - T0:7.2f}s] {msg}"
    result["events"].append(stamp)
    print(stamp, flush=True)


T0 = time.monotonic()


# --------------------------------------------------------------------- Qt helpers
def qt():
    from qtpy.QtCore import QEventLoop, Qt, QTimer
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    return QApplication, QEventLoop, Qt, QTimer, QTest


def wait_until(predicate, timeout_s: float = UI_TIMEOUT_S, what: str = "") -> None:
    """Process Qt events until ``predicate()`` holds (a condition, not a sleep)."""
    _, _, _, _, QTest = qt()
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        QTest.qWait(20)


def run_until_signal(signal, trigger, timeout_s: float):
    """Connect to ``signal``, call ``trigger()``, spin an event loop until it fires.

    Returns the signal's arguments, or None on timeout.
    """
    _, QEventLoop, _, QTimer, _ = qt()
    loop = QEventLoop()
    got: list = []

    def on_signal(*args):
        got.append(args)
        loop.quit()

    signal.connect(on_signal)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(int(timeout_s * 1000))
    try:
        trigger()
        if not got:
            loop.exec()
    finally:
        timer.stop()
        signal.disconnect(on_signal)
    return got[0] if got else None


def click(widget) -> None:
    _, _, Qt, _, QTest = qt()
    assert widget.isVisible(), f"{widget!r} is not visible"
    assert widget.isEnabled(), f"{widget!r} is disabled"
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


# ------------------------------------------------------------- napari and dialog
def open_viewer():
    import napari

    viewer = napari.Viewer(show=True)
    _, _, _, _, QTest = qt()
    QTest.qWaitForWindowExposed(viewer.window._qt_window)
    log(f"viewer open (napari {napari.__version__})")
    return viewer


def menu_texts(viewer, title: str) -> list[str]:
    """Texts of the actions (and submenu actions) of a menu-bar menu."""
    texts: list[str] = []

    def walk(menu):
        for action in menu.actions():
            if action.text():
                texts.append(action.text().replace("&", ""))
            if action.menu() is not None:
                walk(action.menu())

    for action in viewer.window._qt_window.menuBar().actions():
        if action.text().replace("&", "") == title and action.menu() is not None:
            walk(action.menu())
    return texts


def open_plugin_dialog(viewer):
    """Plugins > Install/Uninstall Plugins..., through the real menu-bar action."""
    _, _, _, _, QTest = qt()
    qt_window = viewer.window._qt_window
    plugins_menu = next(
        a.menu()
        for a in qt_window.menuBar().actions()
        if a.text().replace("&", "") == "Plugins"
    )
    install_action = next(
        a for a in plugins_menu.actions() if a.text().startswith("Install/Uninstall")
    )
    assert install_action.isEnabled() and install_action.isVisible()
    install_action.trigger()
    dialog = getattr(qt_window, "_plugin_manager_dialog", None)
    assert dialog is not None, "the menu action opened no plugin dialog"
    wait_until(dialog.isVisible, what="the plugin dialog to show")
    QTest.qWaitForWindowExposed(dialog)
    log(f"plugin dialog open: {type(dialog).__module__}.{type(dialog).__qualname__}")
    return dialog


def installed_names(dialog) -> list[str]:
    lst = dialog.installed_list
    return [lst.item(i).widget.name for i in range(lst.count())]


def watch_installer(dialog) -> list[dict]:
    """Collect every processFinished payload of the dialog's installer queue."""
    finished: list[dict] = []

    def on_finished(data):
        entry = {
            "action": str(data.get("action")),
            "exit_code": data.get("exit_code"),
            "exit_status": _as_int(data.get("exit_status")),
            "pkgs": list(data.get("pkgs", ())),
        }
        finished.append(entry)
        log(f"installer job finished: {entry}")

    dialog.installer.processFinished.connect(on_finished)
    return finished


def _as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return getattr(value, "value", str(value))


def run_installer_job(dialog, trigger) -> None:
    """Trigger an install/uninstall and wait for the installer queue to drain."""
    t = time.monotonic()
    got = run_until_signal(dialog.installer.allFinished, trigger, INSTALL_TIMEOUT_S)
    result["installer_seconds"] = round(time.monotonic() - t, 1)
    result["installer_log"] = dialog.stdout_text.toPlainText()
    if got is None:
        result["installer_timed_out"] = True
        log(f"installer queue did not finish within {INSTALL_TIMEOUT_S:.0f}s")
        dialog.installer.cancel_all()
        raise TimeoutError("installer queue did not finish")
    result["exit_codes"] = list(got[0])
    log(f"installer queue finished: exit codes {result['exit_codes']}")


def close_dialog(dialog) -> None:
    """Press Close; acknowledge the 'Restart napari' message a user then sees."""
    from napari_plugin_manager.qt_warning_dialog import RestartWarningDialog

    QApplication, _, _, QTimer, _ = qt()
    result["restart_warning"] = None

    def acknowledge():
        for w in QApplication.topLevelWidgets():
            if isinstance(w, RestartWarningDialog) and w.isVisible():
                result["restart_warning"] = " ".join(w.restart_warning_text.split())
                w.accept()
                poll.stop()

    poll = QTimer()
    poll.timeout.connect(acknowledge)
    poll.start(50)
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(poll.stop)
    deadline.start(int(UI_TIMEOUT_S * 1000))
    try:
        click(dialog.close_btn)  # blocks in the warning's exec_() until acknowledged
    finally:
        poll.stop()
        deadline.stop()
    wait_until(lambda: not dialog.isVisible(), what="the plugin dialog to close")
    log(f"dialog closed; restart warning: {result['restart_warning']!r}")


def drop_file_on(dialog, path: str) -> None:
    """Drop a file onto the dialog, as from a file manager."""
    from qtpy.QtCore import QMimeData, QPointF, Qt, QUrl
    from qtpy.QtGui import QDropEvent

    assert dialog.acceptDrops(), "the plugin dialog does not accept drops"
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    event = QDropEvent(
        QPointF(dialog.rect().center()),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # A synthetic drop sent through QApplication.sendEvent never reached the
    # dialog here (Qt routes drops from a real drag session), so call the handler
    # Qt calls on a drop, as napari-plugin-manager's own tests do.
    dialog.dropEvent(event)


# ---------------------------------------------------------------------- phases
def phase_install(wheel: str) -> None:
    _, _, _, _, QTest = qt()
    viewer = open_viewer()
    dialog = open_plugin_dialog(viewer)
    result["installed_before"] = installed_names(dialog)
    edit, button = dialog.direct_entry_edit, dialog.direct_entry_btn
    result["direct_entry_placeholder"] = edit.placeholderText()
    result["installer_tool"] = dialog.installer.PYPI_INSTALLER_TOOL_CLASS.__name__

    # Dragging the wheel onto the dialog fills the same field...
    drop_file_on(dialog, wheel)
    result["text_after_drop"] = edit.text()
    edit.clear()
    # ...and so does typing its path, which is what we then install.
    edit.setFocus()
    QTest.keyClicks(edit, wheel)
    result["text_typed"] = edit.text()
    log(f"typed into direct entry: {edit.text()!r}; pressing {button.text()!r}")

    finished = watch_installer(dialog)
    run_installer_job(dialog, lambda: click(button))
    result["jobs"] = finished

    # The same session's dialog lists the new plugin after Refresh.
    wait_until(dialog.refresh_button.isEnabled, what="Refresh to be enabled")
    click(dialog.refresh_button)
    wait_until(lambda: DIST in installed_names(dialog), 30, f"{DIST} to be listed")
    result["installed_after_refresh"] = installed_names(dialog)

    close_dialog(dialog)
    viewer.close()


def phase_check() -> None:
    import npe2

    _, _, _, _, QTest = qt()
    pm = npe2.PluginManager.instance()
    pm.discover()
    result["npe2_discovered"] = DIST in pm
    manifest = pm.get_manifest(DIST)
    result["manifest"] = {
        "display_name": manifest.display_name,
        "categories": [str(c) for c in manifest.categories],
        "visibility": str(manifest.visibility),
        "widgets": [w.display_name for w in manifest.contributions.widgets or []],
        "package_version": manifest.package_version,
    }
    dist = metadata.distribution(DIST)
    result["installed_from"] = str(dist.locate_file(""))
    result["module_file"] = __import__("napari_kmeans_quantize").__file__
    result["direct_url"] = dist.read_text("direct_url.json")

    viewer = open_viewer()
    result["plugins_menu"] = menu_texts(viewer, "Plugins")
    # What `napari -w napari-kmeans-quantize` does once the viewer is up.
    dock, widget = viewer.window.add_plugin_dock_widget(DIST, tabify=True)
    wait_until(dock.isVisible, what="the dock widget to show")
    QTest.qWaitForWindowExposed(dock)
    result["dock"] = {
        "title": dock.windowTitle(),
        "visible": dock.isVisible(),
        "widget_type": f"{type(widget).__module__}.{type(widget).__qualname__}",
        "dock_widgets": list(viewer.window.dock_widgets),
    }
    log(f"docked: {result['dock']}")
    viewer.close()


def phase_uninstall() -> None:
    from qtpy.QtWidgets import QAbstractItemView

    viewer = open_viewer()
    dialog = open_plugin_dialog(viewer)
    result["installed_before"] = installed_names(dialog)
    lst = dialog.installed_list
    items = [lst.item(i) for i in range(lst.count())]
    matches = [it for it in items if it.widget.name == DIST]
    assert len(matches) == 1, f"{DIST} in installed list: {installed_names(dialog)}"
    (item,) = matches
    lst.scrollToItem(item, QAbstractItemView.ScrollHint.PositionAtTop)
    button = item.widget.action_button
    result["action_button_text"] = button.text()
    log(f"pressing {button.text()!r} on the installed entry {DIST!r}")

    finished = watch_installer(dialog)
    run_installer_job(dialog, lambda: click(button))
    result["jobs"] = finished
    wait_until(
        lambda: DIST not in installed_names(dialog), 30, f"{DIST} to leave the list"
    )
    result["installed_after"] = installed_names(dialog)
    close_dialog(dialog)
    viewer.close()


def phase_after() -> None:
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    result["npe2_discovered"] = DIST in pm
    try:
        metadata.distribution(DIST)
        result["distribution_installed"] = True
    except metadata.PackageNotFoundError:
        result["distribution_installed"] = False
    import numpy as np

    viewer = open_viewer()
    viewer.add_image(np.arange(4, dtype=np.uint8).reshape(2, 2), name="still-works")
    result["layers"] = [layer.name for layer in viewer.layers]
    shot = viewer.screenshot(canvas_only=True, flash=False)
    # The 2x2 ramp renders as distinct grey levels: the canvas really draws.
    result["screenshot"] = {
        "shape": list(shot.shape),
        "grey_levels": len(np.unique(shot[..., :3])),
    }
    result["plugins_menu"] = menu_texts(viewer, "Plugins")
    viewer.close()


def main(argv: list[str]) -> int:
    phase, out = argv[1], argv[2]
    result["phase"] = phase
    result["python"] = sys.executable
    status = 1
    try:
        if phase == "install":
            phase_install(os.path.abspath(argv[3]))
        elif phase == "check":
            phase_check()
        elif phase == "uninstall":
            phase_uninstall()
        elif phase == "after":
            phase_after()
        else:
            raise SystemExit(f"unknown phase {phase!r}")
        status = 0
    except Exception:
        result["error"] = traceback.format_exc()
        traceback.print_exc()
    finally:
        result["seconds"] = round(time.monotonic() - T0, 1)
        with open(out, "w") as f:
            json.dump(result, f, indent=1, default=str)
        log(f"phase {phase} done, status {status}")
        sys.stdout.flush()
        sys.stderr.flush()
    return status


if __name__ == "__main__":
    # os._exit: skip interpreter teardown, where leftover Qt/napari threads (e.g.
    # the dialog's hub-fetch worker) could hang or crash an otherwise clean run.
    os._exit(main(sys.argv))
