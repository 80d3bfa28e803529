"""Install, start and stop the local stand-ins for Kafka and ClickHouse as plain processes.

The same functions back `make infra-up`, `lodestar infra ...`, `lodestar up` and the pytest
fixtures, so tests start exactly what users start.
"""
