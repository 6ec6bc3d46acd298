"""Files in and out: volumes with exact geometry, ROIs, segmentations, the dataset format, DICOM outputs."""
