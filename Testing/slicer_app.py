"""A headless stand-in for the Slicer application start-up, on slicer-core (DESIGN §9).

Creates a scene with the application logic and the module logics that the
DVTStaging module and its tests use, registers them with the application
logic, and points `slicer.mrmlScene` / `slicer.modules.<name>.logic()` at
them.  Our own code; no Qt.
"""

from __future__ import annotations

import os
import tempfile
import types
from contextlib import contextmanager

import slicer
import vtk

_LOGICS = {
    "Colors": "vtkSlicerColorLogic",
    "Volumes": "vtkSlicerVolumesLogic",
    "Markups": "vtkSlicerMarkupsLogic",
    "Segmentations": "vtkSlicerSegmentationsModuleLogic",
    "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic",
    "Tables": "vtkSlicerTablesLogic",
    "CropVolume": "vtkSlicerCropVolumeLogic",
}


class HeadlessSlicer:
    def __init__(self):
        self.scene = slicer.vtkMRMLScene()
        self.scene.AddNode(slicer.vtkMRMLCrosshairNode())
        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)
        self._tmp = tempfile.TemporaryDirectory(prefix="slicer-home-")
        self.app_logic.SetHomeDirectory(self._tmp.name)
        self.app_logic.SetTemporaryPath(self._tmp.name)
        # Colour tables are not shipped with slicer-core: an empty ColorFiles folder keeps
        # the colour logic quiet; the built-in default colour nodes are still created.
        os.makedirs(os.path.join(self._tmp.name, "share", "ColorFiles"))
        self.app_logic.SetShareDirectory("share")
        self.app_logic.SetSliceLogics(vtk.vtkCollection())
        self.app_logic.SetViewLogics(vtk.vtkCollection())
        self.logics = {}
        for name, cls in _LOGICS.items():
            logic = getattr(slicer, cls)()
            if name == "Colors":
                logic.SetMRMLApplicationLogic(self.app_logic)
                logic.SetMRMLScene(self.scene)
                logic.AddDefaultColorNodes()
            else:
                logic.SetMRMLScene(self.scene)
                logic.SetMRMLApplicationLogic(self.app_logic)
            self.app_logic.SetModuleLogic(name, logic)
            self.logics[name] = logic
        # .mrb reading needs remote IO and the data IO manager.
        self.remote_io = slicer.vtkMRMLRemoteIOLogic()
        self.data_io = slicer.vtkDataIOManagerLogic()
        self.data_io.SetMRMLApplicationLogic(self.app_logic)
        self.data_io.SetAndObserveDataIOManager(self.remote_io.GetDataIOManager())
        self.remote_io.SetMRMLScene(self.scene)
        self.remote_io.AddDataIOToScene()
        slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(self.scene, True)
        self._previous = {k: getattr(slicer, k, None) for k in ("mrmlScene", "modules", "app")}
        slicer.mrmlScene = self.scene
        slicer.modules = types.SimpleNamespace(**{
            name.lower(): types.SimpleNamespace(logic=(lambda lg=logic: lg)) for name, logic in self.logics.items()
        })
        slicer.app = types.SimpleNamespace(applicationLogic=lambda: self.app_logic,
                                           mrmlScene=lambda: self.scene)

    def logic(self, name):
        return self.logics[name]

    def close(self):
        self.scene.Clear(False)
        self._tmp.cleanup()
        for key, value in self._previous.items():
            if value is None:
                if hasattr(slicer, key):
                    delattr(slicer, key)
            else:
                setattr(slicer, key, value)


@contextmanager
def vtk_errors():
    """Capture VTK error/warning output (VTK never raises) into a list of messages."""
    window = vtk.vtkStringOutputWindow()
    previous = vtk.vtkOutputWindow.GetInstance()
    vtk.vtkOutputWindow.SetInstance(window)
    messages: list[str] = []
    try:
        yield messages
    finally:
        text = window.GetOutput()
        messages.extend(line for line in text.splitlines() if "ERROR" in line or "Error" in line)
        vtk.vtkOutputWindow.SetInstance(previous)
