"""Image geometry and measurements shared by staging, detection and the phantom (torch-free): patient planes,
display orientation, the thrombus-to-muscle signal ratio."""
