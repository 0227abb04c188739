"""Tests of the airflow-orchestrator DAGs: integrity, structure, helpers and behaviour runs."""
