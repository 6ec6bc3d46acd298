"""slicer.dicomDatabase (a ctkDICOMDatabase, CTK Libs/DICOM/Core/ctkDICOMDatabase.h) and
DICOMLib.DICOMUtils.loadSeriesByUID (Modules/Scripted/DICOMLib/DICOMUtils.py), faked.

The database holds what a test puts into it: patients -> studies -> series -> files with tag values.
loadSeriesByUID checks its arguments and the database like the real one and loads each series through
the volume file the test registered for it (standing in for the DICOM scalar volume plugin).
"""

from __future__ import annotations

from .modules import strict_module
from .qobject import Prop, QObject


class ctkDICOMDatabase(QObject):
    PROPERTIES = {"isOpen": Prop("bool", False, getter="_isOpen", readonly=True),
                  "databaseDirectory": Prop("QString", "", getter="_databaseDirectory", readonly=True),
                  "databaseFilename": Prop("QString", "", getter="_databaseFilename", readonly=True)}
    SIGNALS = ("databaseChanged()", "patientAdded(int,QString,QString,QString)")

    def __init__(self, directory: str, is_open: bool = True):
        super().__init__(None)
        self._s.directory, self._s.open = str(directory), is_open
        self._s.patients = {}      # patient -> study -> series -> [file]
        self._s.values = {}        # file -> {tag: value}
        self._s.volume_files = {}  # series -> volume file that "is" the series

    def _isOpen(self):
        return self._s.open

    def _databaseDirectory(self):
        return self._s.directory

    def _databaseFilename(self):
        return f"{self._s.directory}/ctkDICOM.sql"

    def fake_add_series(self, patient, study, series, files: dict, volume_file=None):
        """Test side: `files` maps file path -> {tag: value}."""
        self._s.patients.setdefault(patient, {}).setdefault(study, {})[series] = list(files)
        self._s.values.update(files)
        if volume_file is not None:
            self._s.volume_files[series] = str(volume_file)

    def patients(self):
        return list(self._s.patients)

    def studiesForPatient(self, patientUID):
        return list(self._s.patients.get(patientUID, {}))

    def seriesForStudy(self, studyUID):
        for studies in self._s.patients.values():
            if studyUID in studies:
                return list(studies[studyUID])
        return []

    def filesForSeries(self, seriesUID, hits=-1):
        for studies in self._s.patients.values():
            for series in studies.values():
                if seriesUID in series:
                    files = series[seriesUID]
                    return files if hits < 0 else files[:hits]
        return []

    def fileValue(self, fileName, tag, element=None):
        if element is not None:
            tag = f"{int(tag):04X},{int(element):04X}"
        return self._s.values.get(fileName, {}).get(tag, "")


def loadSeriesByUID(seriesUIDs, messages=None, progressCallback=None, enabledPluginClassNames=None):
    import slicer
    if not isinstance(seriesUIDs, list):
        raise ValueError("SeriesUIDs must contain a list")
    if seriesUIDs is None or len(seriesUIDs) == 0:
        raise ValueError("No series UIDs given")
    database = slicer.dicomDatabase
    if not database.isOpen:
        raise OSError("DICOM module or database cannot be accessed")
    loaded = []
    for uid in seriesUIDs:
        path = database._s.volume_files.get(uid)
        if path is None or not database.filesForSeries(uid):
            continue
        node = slicer.modules.volumes.logic().AddArchetypeVolume(path, uid)
        if node is not None:
            node.SetAttribute("DICOM.instanceUIDs", " ".join(f"{uid}.{i}" for i in range(len(
                database.filesForSeries(uid)))))
            loaded.append(node.GetID())
    return loaded


def make_dicomlib():
    utils = strict_module("DICOMLib.DICOMUtils", "DICOMUtils (fake)", loadSeriesByUID=loadSeriesByUID)
    package = strict_module("DICOMLib", "DICOMLib (fake)", DICOMUtils=utils)
    package.__path__ = []
    return package, utils
