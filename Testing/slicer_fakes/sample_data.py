"""The SampleData module (Modules/Scripted/SampleData/SampleData.py), faked in the two flavours the
DVTStaging module supports: "5.10" (v5.10.0: no registerCustomSampleDataCategory, no categoryTitle)
and "5.12" (v5.12.0: both).  registerCustomSampleDataSource has the same signature in both.

Sources are built like SampleDataSource does (a str uri makes one-element lists of fileNames,
nodeNames, loadFiles, loadFileTypes, checksums; then all lengths must agree, else ValueError), kept in
slicer.modules.sampleDataSources[category], and `click_sample_button(name)` does what the module's
button does: `source.customDownloader(source)` when one is set, called from a Qt slot (an exception is
printed to the console, it does not reach the caller).
"""

from __future__ import annotations

from .modules import strict_module
from .qobject import report_exception


class SampleDataSource:
    def __init__(self, sampleName=None, sampleDescription=None, uris=None, fileNames=None, nodeNames=None,
                 checksums=None, loadFiles=None, customDownloader=None, thumbnailFileName=None,
                 loadFileTypes=None, loadFileProperties=None, loadFileType=None):
        if loadFileType is not None and loadFileTypes is not None:
            raise ValueError("loadFileType and loadFileTypes cannot be specified at the same time")
        if loadFileType is not None:
            loadFileTypes = loadFileType
        self.sampleName = sampleName
        self.sampleDescription = sampleName if sampleDescription is None else sampleDescription
        if isinstance(uris, (list, tuple)):
            n = len(uris)
            loadFileTypes = [loadFileTypes] * n if loadFileTypes is None or isinstance(loadFileTypes, str) \
                else loadFileTypes
            nodeNames = [None] * n if nodeNames is None else nodeNames
            loadFiles = [None] * n if loadFiles is None else loadFiles
            checksums = [None] * n if checksums is None else checksums
        elif isinstance(uris, str):
            uris, fileNames, nodeNames, loadFiles = [uris], [fileNames], [nodeNames], [loadFiles]
            loadFileTypes, checksums = [loadFileTypes], [checksums]
        self.uris, self.fileNames, self.nodeNames, self.loadFiles = uris, fileNames, nodeNames, loadFiles
        self.customDownloader, self.thumbnailFileName = customDownloader, thumbnailFileName
        self.loadFileTypes = loadFileTypes
        self.loadFileProperties = {} if loadFileProperties is None else loadFileProperties
        self.checksums = checksums
        if not len(uris) == len(fileNames) == len(nodeNames) == len(loadFiles) == len(loadFileTypes) == len(checksums):
            raise ValueError(f"All fields of sample data source must have the same length\n  uris: {uris}\n"
                             f"  fileNames: {fileNames}\n  nodeNames: {nodeNames}")

    def __eq__(self, other):
        return str(self) == str(other)

    def __str__(self):
        return "\n".join([f"sampleName: {self.sampleName}", f"sampleDescription: {self.sampleDescription}",
                          f"thumbnailFileName: {self.thumbnailFileName}", f"customDownloader: {self.customDownloader}",
                          f"uris: {self.uris}", f"fileNames: {self.fileNames}", f"nodeNames: {self.nodeNames}"])


def _sources():
    import slicer
    try:
        return slicer.modules.sampleDataSources
    except AttributeError:
        slicer.modules.sampleDataSources = {}
        return slicer.modules.sampleDataSources


def _make_logic(version: str):
    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None, fileNames=None,
                                           nodeNames=None, customDownloader=None, thumbnailFileName=None,
                                           loadFileTypes=None, loadFiles=None, loadFileProperties={},
                                           checksums=None, loadFileType=None):
            if loadFileType is not None and loadFileTypes is not None:
                raise ValueError("loadFileType and loadFileTypes cannot be specified at the same time")
            if loadFileType is not None:
                loadFileTypes = loadFileType
            sources = _sources()
            sources.setdefault(category, [])
            source = SampleDataSource(sampleName=sampleName, uris=uris, fileNames=fileNames, nodeNames=nodeNames,
                                      thumbnailFileName=thumbnailFileName, loadFileTypes=loadFileTypes,
                                      loadFiles=loadFiles, loadFileProperties=loadFileProperties,
                                      checksums=checksums, customDownloader=customDownloader)
            if source in sources[category]:
                return
            sources[category].append(source)

        @staticmethod
        def sampleDataSourcesByCategory(category=None):
            sources = _sources()
            return sources if category is None else sources.get(category, [])

        @staticmethod
        def isSampleDataSourceRegistered(category, sampleDataSource):
            if not isinstance(sampleDataSource, SampleDataSource):
                raise TypeError(f"unsupported sampleDataSource type '{type(sampleDataSource)}'")
            return sampleDataSource in _sources().get(category, [])

        def __init__(self, logMessage=None):
            raise NotImplementedError("the fake SampleDataLogic offers only its static registration methods")

    if version != "5.10":
        def registerCustomSampleDataCategory(category, title):
            import slicer
            try:
                categories = slicer.modules.sampleDataSourceCategories
            except AttributeError:
                categories = slicer.modules.sampleDataSourceCategories = {}
            categories.setdefault(category, {})["title"] = title

        def categoryTitle(category):
            import slicer
            try:
                return slicer.modules.sampleDataSourceCategories.get(category, {}).get("title", category)
            except AttributeError:
                return category

        SampleDataLogic.registerCustomSampleDataCategory = staticmethod(registerCustomSampleDataCategory)
        SampleDataLogic.categoryTitle = staticmethod(categoryTitle)
    return SampleDataLogic


def click_sample_button(sample_name: str):
    """What the SampleData panel's button for `sample_name` does when clicked (v5.10.0 and v5.12.0):
    customDownloader(source) if set, else SampleDataLogic().downloadFromSource(source) (not faked)."""
    for sources in _sources().values():
        for source in sources:
            if source.sampleName == sample_name:
                if not source.customDownloader:
                    raise NotImplementedError("downloading from a URL is not faked")
                try:
                    source.customDownloader(source)
                except Exception as exc:
                    report_exception(exc, f"in the SampleData button '{sample_name}PushButton'")
                return
    raise AssertionError(f"no SampleData button for '{sample_name}' (registered: "
                         f"{[s.sampleName for ss in _sources().values() for s in ss]})")


def make_module(version: str):
    return strict_module("SampleData", f"SampleData module of Slicer {version} (fake)",
                         SampleDataLogic=_make_logic(version), SampleDataSource=SampleDataSource)
