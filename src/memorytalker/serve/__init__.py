"""``memorytalker serve``: a local web page that animates uploaded or recorded speech (see docs/SERVE.md).

Importing this package is cheap; FastAPI is imported by :func:`create_app`.
"""

from memorytalker.serve.app import create_app
from memorytalker.serve.jobs import JobManager, ServeSettings, UploadError, check_upload

__all__ = ["JobManager", "ServeSettings", "UploadError", "check_upload", "create_app"]
