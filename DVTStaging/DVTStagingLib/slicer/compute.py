"""Where the model runs, as the user chose it in the panel: on this computer (the warm local worker) or on a
staging server (its address and token file).  Kept in Slicer's user settings (`slicer.app.userSettings()`,
a QSettings), never in the scene: a server address is about the workstation, not the study."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .jobs import ServerTarget

LOCAL, SERVER = "local", "server"
COMPUTE_ON_KEY = "DVTStaging/ComputeOn"
SERVER_URL_KEY = "DVTStaging/ServerURL"
TOKEN_FILE_KEY = "DVTStaging/ServerTokenFile"


@dataclass
class ComputeSettings:
    compute_on: str = LOCAL
    server_url: str = ""
    token_file: str = ""


def _settings(settings=None):
    if settings is not None:
        return settings
    import slicer

    return slicer.app.userSettings()


def read_settings(settings=None) -> ComputeSettings:
    s = _settings(settings)
    compute_on = str(s.value(COMPUTE_ON_KEY, LOCAL) or LOCAL)
    return ComputeSettings(compute_on if compute_on in (LOCAL, SERVER) else LOCAL,
                           str(s.value(SERVER_URL_KEY, "") or ""), str(s.value(TOKEN_FILE_KEY, "") or ""))


def write_settings(choice: ComputeSettings, settings=None) -> None:
    if choice.compute_on not in (LOCAL, SERVER):
        raise ValueError(f"compute_on must be '{LOCAL}' or '{SERVER}'")
    s = _settings(settings)
    s.setValue(COMPUTE_ON_KEY, choice.compute_on)
    s.setValue(SERVER_URL_KEY, choice.server_url.strip())
    s.setValue(TOKEN_FILE_KEY, choice.token_file.strip())


def configured_server(settings=None) -> ServerTarget | None:
    """The staging server to use (None: this computer); ValueError when the choice is incomplete."""
    choice = read_settings(settings)
    if choice.compute_on != SERVER:
        return None
    url = choice.server_url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("Set the staging server's address (http://host:port or https://host) under "
                         "'Compute on', or compute on this computer.")
    return ServerTarget(url, choice.token_file.strip() or None)


def job_runner():
    """The Logic's job runner: the configured server when there is one, else the shared warm local worker."""
    from .jobs import JobRunner
    from .worker import shared_worker

    return JobRunner(worker=shared_worker(), server=configured_server)
