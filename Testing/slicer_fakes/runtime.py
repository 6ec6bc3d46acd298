"""The test session the fakes report to (dialogs answered, messages recorded, timers, console errors)."""

current = None   # the active slicer_fakes.session.Session, or None


def session():
    if current is None:
        raise RuntimeError("no fake Slicer session is active (create Testing/slicer_app.HeadlessSlicer first)")
    return current


def add_vtk_observer(obj, event, callback, priority: float = 0.0) -> int:
    """AddObserver, remembered by the session so that closing it removes the fakes' observers from MRML
    objects (a scene destroyed later must not call back into fake widgets during garbage collection)."""
    tag = obj.AddObserver(event, callback, priority)
    if current is not None:
        current.vtk_observers.append((obj, tag))
    return tag
