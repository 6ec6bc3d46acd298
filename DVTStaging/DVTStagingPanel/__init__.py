"""Sections of the DVTStaging panel (Qt side): each binds one group of widgets to the Logic.

DVTStaging.py keeps the module, the parameter node, the Logic and the core of
the Widget; these sections keep it short.  They import qt and slicer, so they
run only inside Slicer (and in the tests, on strict stand-ins).
"""
