"""Helpers shared by the DAG files: HTTP plumbing, registry calls, quality gates, alerts.

Only the standard library, requests/tenacity and the Airflow SDK are imported here (all of them
come with apache-airflow), so parsing a DAG file stays cheap and does no network I/O.
"""
