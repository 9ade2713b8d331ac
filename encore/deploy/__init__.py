"""Deployed mode on one machine: Postgres, Airflow's production components and an MLflow server.

``python -m encore.deploy up|test|down|status`` (``make deploy-up`` ...). Every service listens
on ``cfg.deploy.host`` (127.0.0.1) and keeps its data, logs and pid file under
``<ENCORE_HOME>/deploy/``; ``encore.deploy.services`` is the one table of them.
"""
