"""Our files, read by Slicer's own code (slicer-core) and by slicerio."""

from __future__ import annotations

import numpy as np
import slicer
import slicerio
import vtk
from DVTStagingLib.io.roi import BoxROI, read_rois, write_rois
from DVTStagingLib.io.segmentation import THROMBUS, TISSUE_SEGMENTS, read_segmentation
from DVTStagingLib.io.volume import read_volume
from slicer_app import vtk_errors
from vtk.util import numpy_support


def _matrix(vtk_matrix):
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _oblique_axes():
    a, b = 0.35, -0.5
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ rz


def test_markups_logic_loads_oblique_rois_exactly(tmp_path, slicer_app):
    rois = [BoxROI("thrombus-1", [12.5, -40.0, -120.0], [18.0, 22.0, 60.0], _oblique_axes()),
            BoxROI("thrombus-2", [-80.0, 5.0, -90.0], [10.0, 12.0, 30.0])]
    path = write_rois(tmp_path / "rois.mrk.json", rois)
    with vtk_errors() as errors:
        slicer_app.logic("Markups").LoadMarkups(str(path), "")
    assert errors == []
    nodes = slicer_app.scene.GetNodesByClass("vtkMRMLMarkupsROINode")
    assert nodes.GetNumberOfItems() == 2
    for n, roi in enumerate(rois):
        node = nodes.GetItemAsObject(n)
        assert node.GetName() == roi.name
        center = [0.0, 0.0, 0.0]
        node.GetCenterWorld(center)
        np.testing.assert_allclose(center, roi.center_ras, atol=1e-6)
        np.testing.assert_allclose(node.GetSize(), roi.size_mm, atol=1e-6)
        np.testing.assert_allclose(_matrix(node.GetObjectToWorldMatrix())[:3, :3], roi.axes_ras, atol=1e-6)


def test_roi_saved_by_slicer_reads_back(tmp_path, slicer_app):
    node = slicer_app.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "drawn")
    node.SetCenter(5.0, -7.0, 11.0)
    node.SetSize(8.0, 9.0, 10.0)
    node.CreateDefaultDisplayNodes()
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(tmp_path / "drawn.mrk.json"))
    assert storage.WriteData(node)
    roi = read_rois(tmp_path / "drawn.mrk.json")[0]
    np.testing.assert_allclose(roi.center_ras, [5.0, -7.0, 11.0], atol=1e-6)
    np.testing.assert_allclose(roi.size_mm, [8.0, 9.0, 10.0], atol=1e-6)


def test_phantom_segmentation_reads_in_slicerio_and_slicer(phantom_dataset, slicer_app):
    case = phantom_dataset.cases[0]
    seg_path = phantom_dataset.path(case.segmentation)
    volume = read_volume(phantom_dataset.path(case.image))
    ours = read_segmentation(seg_path)

    # slicerio: names, terminology, geometry and voxels.
    sio = slicerio.read_segmentation(str(seg_path))
    assert [s["name"] for s in sio["segments"]] == [s.name for s in TISSUE_SEGMENTS]
    thrombus = slicerio.segment_from_name(sio, "Thrombus")
    assert thrombus["terminology"]["type"][1] == "396339007"
    np.testing.assert_allclose(sio["ijkToLPS"], volume.ijk_to_lps, atol=1e-9)
    assert np.array_equal(np.asarray(sio["voxels"]).transpose(2, 1, 0), ours.labelmap)

    # Slicer's segmentation storage: same segments, thrombus voxels where ours are, in the image geometry.
    with vtk_errors() as errors:
        seg_node = slicer_app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        storage = slicer.vtkMRMLSegmentationStorageNode()
        slicer_app.scene.AddNode(storage)
        storage.SetFileName(str(seg_path))
        assert storage.ReadData(seg_node)
    assert errors == []
    segmentation = seg_node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert "Thrombus" in names and "Muscle" in names and "Edema" in names
    thrombus_id = segmentation.GetSegmentIdBySegmentName("Thrombus")
    assert "396339007" in segmentation.GetSegment(thrombus_id).GetTerminology()
    labelmap = slicer.vtkOrientedImageData()
    seg_node.GetBinaryLabelmapRepresentation(thrombus_id, labelmap)
    to_world = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(to_world)
    np.testing.assert_allclose(_matrix(to_world), volume.ijk_to_ras, atol=1e-6)
    extent = labelmap.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    values = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
    thrombus_voxels = int(np.count_nonzero(values.reshape(dims[::-1])))
    assert thrombus_voxels == int((ours.labelmap == THROMBUS).sum()) > 0
