"""The Celery side: the app and its configuration, task names (the wire contract), the durable
campaign record in Redis, the phase-task wrapper, controller tasks and the dispatcher that
decides what runs next."""
