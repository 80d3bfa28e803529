"""``lodestar report``: the dashboards' panels as PNG charts, for people without Grafana."""
