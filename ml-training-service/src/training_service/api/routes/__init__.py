"""One router per resource: operations (health, metrics), datasets and training jobs."""
