"""A headless stand-in for the Slicer application start-up, on slicer-core (the PyPI MRML package).

Creates a scene with the application logic and the module logics that the
DVTStaging module and its tests use, registers them with the application
logic, and points `slicer.mrmlScene` / `slicer.modules.<name>.logic()` at
them.  `slicer.app` is the strict fake qSlicerApplication of a
slicer_fakes.Session (`self.session`: dialogs, messages, event loop, module
life cycle; see Testing/slicer_fakes).  `add_slice_views()` adds the Red,
Yellow and Green slice views (real vtkMRMLSliceLogic objects with their slice
and slice composite nodes) as Slicer's layout has them.  Our own code; no Qt.
"""

from __future__ import annotations

import os
import tempfile
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
    "Plots": "vtkSlicerPlotsLogic",
}


class HeadlessSlicer:
    def __init__(self, version: str = "5.12", testing: bool = False, main_window: bool = True):
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
        self.home = self._tmp.name
        self.slice_logics = {}
        self._previous = {k: getattr(slicer, k, None) for k in ("mrmlScene", "modules", "app")}
        slicer.mrmlScene = self.scene
        from slicer_fakes import Session  # slicer.app, slicer.modules and the rest of the fakes

        self.session = Session(self, version=version, testing=testing, main_window=main_window)
        self.session.app.cachePath = os.path.join(self._tmp.name, "cache")

    def add_slice_views(self, names=("Red", "Yellow", "Green")):
        """The slice views of Slicer's layout: a slice logic each, with its slice and slice composite node."""
        for name in names:
            if name in self.slice_logics:
                continue
            logic = slicer.vtkMRMLSliceLogic()
            logic.SetMRMLApplicationLogic(self.app_logic)
            logic.SetMRMLScene(self.scene)
            logic.AddSliceNode(name)
            self.app_logic.GetSliceLogics().AddItem(logic)
            self.slice_logics[name] = logic
        return [self.slice_logics[n].GetSliceCompositeNode() for n in names]

    def logic(self, name):
        return self.logics[name]

    def close(self):
        self.scene.Clear(False)
        self.session.close()
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
