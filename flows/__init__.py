"""When things happen: Prefect flows that call ``states/`` and ``notifications/``.

A flow holds no rule. ``chase`` sweeps deadlines, ``dispatch`` drains the outbox, ``fire``
is one manual transition runnable from the Prefect UI. Schedules live in prefect.yaml.
"""
