"""The ceiling: a bare FastAPI endpoint that returns a constant, served like the service.

It does what every HTTP service must do (accept a POST, answer JSON) and nothing else, so
its requests/s bound what any model server on the same uvicorn setup can reach.
"""

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()
_BODY = b'{"predictions":["0"]}'


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict() -> Response:
    return Response(_BODY, media_type="application/json")
