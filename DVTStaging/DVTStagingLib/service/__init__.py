"""The staging service: `dvt-staging serve` (an HTTP server on FastAPI/uvicorn that keeps the models loaded)
and its client (`dvt-staging stage|detect --server URL`), speaking the protocol of docs/service.md.

One job per module: `protocol` (the wire contract, shared), `auth` (tokens, who may bind where), `uploads`
(request files into a job folder), `jobs` (job folders, queue, events, cancel), `batching` (concurrent model
calls merged into one batch), `models_cache` (warm models per model and device), `tasks` (what a job runs),
`app` (the HTTP routes), `server` (the `serve` command), `client` (the `--server` commands), `benchmark`.
The client side (`protocol`, `client`) imports neither torch nor the web framework's server parts.
"""
