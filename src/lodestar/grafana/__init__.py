"""Grafana dashboards as code: specs, the generator of the committed JSON and provisioning,
its validators (static and on ClickHouse) and the bootstrap of an existing Grafana."""
