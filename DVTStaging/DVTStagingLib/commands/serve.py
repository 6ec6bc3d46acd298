from __future__ import annotations

from pathlib import Path

from . import options

NAME = "serve"
HELP = "HTTP staging service: models stay loaded, clients send studies (docs/service.md)"


def add_arguments(p):
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                                                       "address needs --token-file)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0: any free port, see --port-file)")
    p.add_argument("--token-file", type=Path, default=None, help="file holding the token clients must send")
    options.add_device(p)
    options.add_model(p, "default staging model")
    options.add_detector(p, "default thrombus detector")
    p.add_argument("--port-file", type=Path, default=None, help="write the port here once the server is ready")
    p.add_argument("--parent-pid", type=int, default=None, help="stop when this process has gone")
    p.add_argument("--max-upload-mb", type=int, default=1024, help="largest upload accepted (default 1024 MB)")
    p.add_argument("--jobs", type=int, default=None,
                   help="jobs run at once (default 1 on a CPU, 4 on a GPU, where their slices are batched together)")
    p.add_argument("--max-jobs", type=int, default=16, help="jobs queued or running before new ones get 503")
    p.add_argument("--keep-s", type=float, default=600.0, help="seconds a finished job's outputs wait to be fetched")
    p.add_argument("--work-dir", type=Path, default=None, help="folder for jobs (default: a new temporary folder)")
    p.add_argument("--log-level", choices=["debug", "info", "warning"], default="info")


def run(args) -> int:
    from ..service.server import serve

    return serve(args.host, args.port, token_file=args.token_file, device=args.device, model=args.model,
                 port_file=args.port_file, parent_pid=args.parent_pid, max_upload_mb=args.max_upload_mb,
                 jobs=args.jobs, max_jobs=args.max_jobs, keep_s=args.keep_s, work_dir=args.work_dir,
                 log_level=args.log_level, detector=args.detector)
