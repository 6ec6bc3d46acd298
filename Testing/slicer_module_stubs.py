"""Kept for the importers of `import_module_file` (test_logic.py, test_export.py, test_module_files.py).

The stand-ins for what slicer-core lacks now live in Testing/slicer_fakes/ (strict fakes with the real
signatures; see Testing/slicer_api_facts.md).
"""

from slicer_fakes import MODULE_FILE, import_module_file, install  # noqa: F401
