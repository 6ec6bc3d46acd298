"""Regenerate DVTStaging/CMakeLists.txt so that it lists every DVTStagingLib file (run from the repo root)."""
import pathlib
root = pathlib.Path("DVTStaging")
libs = sorted(str(p.relative_to(root)) for p in (root / "DVTStagingLib").rglob("*") if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts)
py = [l for l in libs if l.endswith(".py")]
res = [l for l in libs if not l.endswith(".py")]
out = ["#-----------------------------------------------------------------------------",
       "set(MODULE_NAME DVTStaging)", "",
       "#-----------------------------------------------------------------------------",
       "# Every file of the core is listed: Slicer installs only what is named here.",
       "set(MODULE_PYTHON_SCRIPTS", "  ${MODULE_NAME}.py"] + [f"  {l}" for l in py] + [")", "",
       "set(MODULE_PYTHON_RESOURCES",
       "  Resources/Icons/${MODULE_NAME}.png",
       "  Resources/UI/${MODULE_NAME}.ui",
       "  Resources/requirements.txt"] + [f"  {l}" for l in res] + [")", "",
       "#-----------------------------------------------------------------------------",
       "slicerMacroBuildScriptedModule(",
       "  NAME ${MODULE_NAME}",
       "  SCRIPTS ${MODULE_PYTHON_SCRIPTS}",
       "  RESOURCES ${MODULE_PYTHON_RESOURCES}",
       "  WITH_GENERIC_TESTS",
       "  )", "",
       "#-----------------------------------------------------------------------------",
       "# Bundled model weights and cards (top-level Resources/Models) go beside the module.",
       "file(GLOB DVTSTAGING_MODEL_FILES ${CMAKE_CURRENT_SOURCE_DIR}/../Resources/Models/*)",
       "install(FILES ${DVTSTAGING_MODEL_FILES}",
       "  DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/Resources/Models COMPONENT RuntimeLibraries)", "",
       "#-----------------------------------------------------------------------------",
       "if(BUILD_TESTING)",
       
       
       "  add_subdirectory(Testing)",
       "endif()", ""]
(root / "CMakeLists.txt").write_text("\n".join(out))
