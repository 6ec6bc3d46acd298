"""The phantom study in Slicer's Sample Data module: generated on first use (no download), then shown."""

import os

import slicer
from slicer.i18n import tr as _

from DVTStagingLib.slicer.dependencies import DependencyInstaller
from DVTStagingLib.slicer.sample_study import SAMPLE_NAME, sample_image_uri
from DVTStagingLib.slicer.worklist_scene import load_sample_study

MODULE_DIR = os.path.dirname(os.path.dirname(__file__))


def registerSampleData():
    """A generated phantom study in the Sample Data module (made on first use, no download)."""
    import SampleData

    logic = SampleData.SampleDataLogic
    if hasattr(logic, "registerCustomSampleDataCategory"):   # Slicer 5.12 and later
        logic.registerCustomSampleDataCategory("DVTStaging", _("DVT Staging"))
    logic.registerCustomSampleDataSource(
        category="DVTStaging", sampleName=SAMPLE_NAME,
        thumbnailFileName=os.path.join(MODULE_DIR, "Resources", "Icons", "DVTStaging.png"),
        uris=sample_image_uri(slicer.app.cachePath), fileNames=f"{SAMPLE_NAME}.nrrd", nodeNames=SAMPLE_NAME,
        customDownloader=downloadSampleStudy)


def downloadSampleStudy(source=None):
    """SampleData's button: make sure the phantom can be written, load it, show it in the slice views."""
    with slicer.util.tryWithErrorDisplay(_("Cannot load the DVT Staging sample study."), waitCursor=True):
        if not DependencyInstaller().ensure("sample"):
            return None
        volume = load_sample_study(slicer.app.cachePath)
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        return volume
