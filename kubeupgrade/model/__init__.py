"""Pure value types: versions, campaigns, plans. No I/O, no Celery, no kubernetes client."""
