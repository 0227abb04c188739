"""The stack as users see it: headless Chromium driving the Airflow, MLflow and serving UIs.

`browser` starts Debian's Chromium through Playwright, `pages` knows how to reach and read
each page (shared by `make screenshots` and the browser smoke test in integration-tests),
`screenshots` captures the PNGs of the README. Needs the `playwright` package (in the
integration-tests venv) and /usr/bin/chromium (`scripts/ensure_chromium.sh`).
"""
