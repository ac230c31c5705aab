"""The HTTP API over the published snapshot (`storylake serve`): FastAPI routes in app.py, bearer-token
authentication in auth.py, RFC 9457 problems in problems.py,
durable seen receipts in receipts.py / landing_writer.py, read-your-writes in seen_overlay.py, the snapshot
switch in snapshot_holder.py, Prometheus metrics in metrics.py, the uvicorn launcher in server.py."""
