"""Regenerate DVTStaging/CMakeLists.txt so that it lists every file the Slicer module installs (run from the
repo root): the module file, the panel sections, every DVTStagingLib file, the resources and the bundled models."""
import pathlib

root = pathlib.Path("DVTStaging")


def files(folder, suffixes):
    return sorted(p.relative_to(root).as_posix() for p in (root / folder).rglob("*")
                  if p.is_file() and p.suffix in suffixes and "__pycache__" not in p.parts)


scripts = files("DVTStagingLib", (".py",)) + files("DVTStagingPanel", (".py",))
resources = files("DVTStagingLib", (".json",)) + files("Resources/Models", (".json", ".safetensors"))
out = ["#-----------------------------------------------------------------------------",
       "set(MODULE_NAME DVTStaging)", "",
       "#-----------------------------------------------------------------------------",
       "# Every file is listed: Slicer installs only what is named here (tools/update_module_cmake.py writes this).",
       "set(MODULE_PYTHON_SCRIPTS", "  ${MODULE_NAME}.py"] + [f"  {f}" for f in scripts] + [")", "",
       "set(MODULE_PYTHON_RESOURCES",
       "  Resources/Icons/${MODULE_NAME}.png",
       "  Resources/UI/${MODULE_NAME}.ui",
       "  Resources/requirements.txt"] + [f"  {f}" for f in resources] + [")", "",
       "#-----------------------------------------------------------------------------",
       "slicerMacroBuildScriptedModule(",
       "  NAME ${MODULE_NAME}",
       "  SCRIPTS ${MODULE_PYTHON_SCRIPTS}",
       "  RESOURCES ${MODULE_PYTHON_RESOURCES}",
       "  WITH_GENERIC_TESTS",
       "  )", "",
       "#-----------------------------------------------------------------------------",
       "if(BUILD_TESTING)",
       "  add_subdirectory(Testing)",
       "endif()", ""]
(root / "CMakeLists.txt").write_text("\n".join(out))
