"""The one place where the core meets MRML: nodes <-> core objects.

Only this module touches MRML (Slicer or the slicer-core package); never Qt.
"""

from __future__ import annotations

import numpy as np
import vtk
from vtk.util import numpy_support

from ..io.roi import BoxROI
from ..io.volume import Volume, geometry_from_ijk_to_ras


def _matrix_to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _numpy_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def volume_from_node(node) -> Volume:
    """Core `Volume` (a copy of the voxels) from a scalar volume node, in world coordinates."""
    image = node.GetImageData()
    if image is None:
        raise ValueError(f"volume node {node.GetName()} has no image data")
    if image.GetNumberOfScalarComponents() != 1:
        raise ValueError(f"volume node {node.GetName()} is not a scalar volume")
    ni, nj, nk = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(nk, nj, ni).copy()
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    m = _matrix_to_numpy(ijk_to_ras)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise ValueError(f"volume node {node.GetName()} is under a non-linear transform; harden it first")
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        m = _matrix_to_numpy(to_world) @ m
    spacing, origin_lps, direction_lps = geometry_from_ijk_to_ras(m)
    return Volume(array, spacing, origin_lps, direction_lps, {"source_format": "mrml", "node": node.GetName()})


def update_volume_node(node, volume: Volume, array: np.ndarray | None = None):
    """Put voxels and geometry into a (scalar) volume node."""
    data = np.ascontiguousarray(volume.array if array is None else array)
    image = vtk.vtkImageData()
    nk, nj, ni = data.shape
    image.SetDimensions(ni, nj, nk)
    vtk_array = numpy_support.numpy_to_vtk(data.ravel(), deep=True)
    image.GetPointData().SetScalars(vtk_array)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(_numpy_to_matrix(volume.ijk_to_ras))
    return node


def roi_from_node(node) -> BoxROI:
    """Core `BoxROI` from a markups ROI node (world coordinates)."""
    center = [0.0, 0.0, 0.0]
    node.GetCenterWorld(center)
    size = list(node.GetSize())
    object_to_world = _matrix_to_numpy(node.GetObjectToWorldMatrix())
    return BoxROI(node.GetName(), np.array(center), np.array(size), object_to_world[:3, :3])


def roi_to_node(roi: BoxROI, scene, node=None):
    """Create (or update) a markups ROI node that matches `roi`."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", roi.name)
    node.SetName(roi.name)
    object_to_node = np.eye(4)
    object_to_node[:3, :3] = roi.axes_ras
    object_to_node[:3, 3] = roi.center_ras
    node.SetAndObserveObjectToNodeMatrix(_numpy_to_matrix(object_to_node))
    node.SetSize(*roi.size_mm.tolist())
    return node

