"""``elman serve``: trained models behind an HTTP API and a browser playground (docs/serve.md).

:mod:`~elman.serve.views` wraps each loaded model behind the questions the API asks it,
:mod:`~elman.serve.batching` runs them on one model thread with a bounded queue, batching the
requests that can share a forward pass, and :mod:`~elman.serve.app` is the ASGI application.
FastAPI and uvicorn come with the ``elman[serve]`` extra.
"""
