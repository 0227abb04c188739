"""Stub services for the behaviour tests: FastAPI apps that play the HTTP contracts.

They run on real uvicorn servers on 127.0.0.1 (``server.py``) and share one ``World`` (the state
a test arranges and then inspects), so a DAG run crosses real sockets and real HTTP.
"""
