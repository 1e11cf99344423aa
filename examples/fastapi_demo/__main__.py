"""``python -m examples.fastapi_demo``: serve the demo on http://127.0.0.1:8000 with uvicorn."""

from __future__ import annotations

import logging
import os


def main() -> None:
    try:
        import uvicorn  # noqa: PLC0415 - the demo's server, not a dependency of the app
    except ImportError:
        raise SystemExit("the demo runs on uvicorn: pip install uvicorn") from None
    # The app's and recyclecheck's log lines (masked numbers only) on the terminal.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run("examples.fastapi_demo:create_app", factory=True, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
