"""The history service: every Lodestar topic into ClickHouse, and named queries over it.

``sink`` consumes the topics and inserts batches (commit after insert; dedupe by event id in
ClickHouse), ``store`` owns the ClickHouse clients (chDB embedded or a server over HTTP, same
SQL), ``migrate`` applies ``infra/clickhouse/*.sql``, ``queries`` loads the named queries of
``infra/clickhouse/queries/``, ``api`` serves them, ``service`` wires it all in one process.
"""
