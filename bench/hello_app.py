"""The floor for ingest: a Flask app that only parses the JSON body and answers 204.

Served by bench/compare.py with the Procfile's gunicorn command and config, so the gap between it
and the service is the service's own work (auth, validation, SQL, commit), not the server's.
It imports nothing but Flask, so its worker RSS is the floor for memory too.
"""

from __future__ import annotations

from flask import Flask, Response, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/mx/jobs")
    def receive_job() -> Response:
        request.get_json()
        return Response(status=204)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(status=200)

    return app
