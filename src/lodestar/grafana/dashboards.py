"""The Lodestar dashboards: routing, fleet, learning, event pipeline.

Every ClickHouse panel reads one named history query; the variables hold the values of the
queries' non-time parameters (``policy``, ``instance_id``, …). Panels whose query only has
rows when something went wrong (the dead letters) are ``empty_when_healthy``; the error, fallback
and gap panels are not: their queries answer a row per bucket with traffic, zeros included, so
no rows there means no traffic. Pure data, no I/O.
"""

from __future__ import annotations

from lodestar.grafana.spec import DashboardSpec, PanelSpec, PromTarget, VariableSpec


def _distinct_values(column: str, table: str) -> str:
    """Variable SQL: ``''``/"All" first, then the distinct values of ``column`` in the range."""
    return (
        "SELECT value, text FROM (\n"
        "    SELECT '' AS value, 'All' AS text, 0 AS o\n"
        "    UNION ALL\n"
        f"    SELECT DISTINCT toString({column}) AS value, toString({column}) AS text, 1 AS o\n"
        f"    FROM {table} FINAL\n"
        "    WHERE $__timeFilter(ts)\n"
        ")\n"
        "ORDER BY o, value"
    )


POLICY = VariableSpec(
    name="policy",
    label="Policy",
    kind="query",
    default="",
    description="routing policy ('All' = every policy)",
    sql=_distinct_values("policy", "route_decisions"),
)
INSTANCE = VariableSpec(
    name="instance_id",
    label="Instance",
    kind="query",
    default="",
    description="inference instance ('All' = every instance)",
    sql=_distinct_values("instance_id", "instance_states"),
)
SOURCE_TOPIC = VariableSpec(
    name="source_topic",
    label="Source topic",
    kind="query",
    default="",
    description="topic of the dead-lettered message ('All' = every topic)",
    sql=_distinct_values("source_topic", "dead_letters"),
)
METRIC = VariableSpec(
    name="metric",
    label="Training metric",
    kind="custom",
    default="train_loss",
    description="key of the trainer's ModelUpdate.metrics",
    options=("train_loss", "val_mae_log_ttft", "val_spread_log_ttft", "val_n", "steps"),
)
FEATURE = VariableSpec(
    name="feature",
    label="Prediction feature",
    kind="constant",
    default="predicted_ttft_s",
    description="suffix of the chosen candidate's TTFT prediction feature",
)
GRACE = VariableSpec(
    name="grace_s",
    label="Outcome grace (s)",
    kind="constant",
    default="600",
    description="how long after the range outcomes are still matched to decisions",
)
LIMIT = VariableSpec(
    name="limit",
    label="Rows",
    kind="custom",
    default="100",
    description="rows of the dead-letter table",
    options=("100", "20", "500"),
)

P50_P99 = (("ttft_p50_s", "p50"), ("ttft_p99_s", "p99"))

ROUTING = DashboardSpec(
    uid="lodestar-routing",
    title="Lodestar — routing and latency",
    description="TTFT per policy and instance, request rate and routing share, request results.",
    variables=(POLICY, INSTANCE),
    panels=(
        PanelSpec(
            key="ttft_by_policy",
            title="TTFT p50 / p99 by policy",
            description="Time to first token of finished requests, per routing policy (gateway-measured).",
            kind="timeseries",
            query="ttft_by_policy",
            labels=("policy",),
            values=("ttft_p50_s", "ttft_p99_s"),
            value_names=P50_P99,
            unit="s",
        ),
        PanelSpec(
            key="ttft_by_instance",
            title="TTFT p50 / p99 by instance",
            description="Time to first token per inference instance (filtered by policy and instance).",
            kind="timeseries",
            query="ttft_by_instance",
            labels=("instance_id",),
            values=("ttft_p50_s", "ttft_p99_s"),
            value_names=P50_P99,
            unit="s",
        ),
        PanelSpec(
            key="request_rate",
            title="Request rate per instance",
            description="Routing decisions per second sent to each instance.",
            kind="timeseries",
            query="instance_traffic",
            labels=("instance_id",),
            values=("rate_per_s",),
            value_names=(("rate_per_s", "req/s"),),
            unit="reqps",
        ),
        PanelSpec(
            key="routing_share",
            title="Routing share per instance",
            description="Fraction of each bucket's decisions that went to each instance (stacked to 100%).",
            kind="timeseries",
            query="instance_traffic",
            labels=("instance_id",),
            values=("share",),
            value_names=(("share", "share"),),
            unit="percentunit",
            stacked=True,
        ),
        PanelSpec(
            key="error_rate",
            title="Request error rate by policy",
            description="Fraction of requests that ended in an error, as the gateway saw them.",
            kind="timeseries",
            query="outcome_status",
            labels=("policy",),
            values=("error_rate",),
            value_names=(("error_rate", "errors"),),
            unit="percentunit",
        ),
        PanelSpec(
            key="gateway_fallbacks",
            title="Gateway fallbacks and retries by policy",
            description="Requests served by another instance after a failure, and retried attempts.",
            kind="bars",
            query="outcome_status",
            labels=("policy",),
            values=("gateway_fallbacks", "retries"),
            value_names=(("gateway_fallbacks", "fallbacks"), ("retries", "retries")),
        ),
    ),
)

FLEET = DashboardSpec(
    uid="lodestar-fleet",
    title="Lodestar — fleet",
    description="Instance load, KV-cache usage, prefix-cache reuse and health, from the collector's scrapes.",
    variables=(INSTANCE, POLICY),
    panels=(
        PanelSpec(
            key="instance_load",
            title="Instance load: running / waiting requests",
            description="Mean running and waiting requests per instance per bucket.",
            kind="timeseries",
            query="instance_load",
            labels=("instance_id",),
            values=("running_avg", "waiting_avg"),
            value_names=(("running_avg", "running"), ("waiting_avg", "waiting")),
        ),
        PanelSpec(
            key="kv_usage",
            title="KV-cache usage",
            description="Mean and peak fraction of KV-cache blocks in use per instance.",
            kind="timeseries",
            query="instance_load",
            labels=("instance_id",),
            values=("kv_usage_avg", "kv_usage_max"),
            value_names=(("kv_usage_avg", "mean"), ("kv_usage_max", "max")),
            unit="percentunit",
        ),
        PanelSpec(
            key="prefix_hit_rate",
            title="Prefix-cache hit rate (engine)",
            description="Prefix-cache hit rate the engines report, per instance.",
            kind="timeseries",
            query="prefix_hit_rate",
            labels=("instance_id",),
            values=("hit_rate_avg",),
            value_names=(("hit_rate_avg", "hit rate"),),
            unit="percentunit",
        ),
        PanelSpec(
            key="prefix_reuse",
            title="Cached prefix tokens by policy (router estimate)",
            description="Cached prefix tokens of the chosen instance over prompt tokens, per policy.",
            kind="timeseries",
            query="prefix_reuse_by_policy",
            labels=("policy",),
            values=("cached_token_frac",),
            value_names=(("cached_token_frac", "cached"),),
            unit="percentunit",
        ),
        PanelSpec(
            key="instance_health",
            title="Instance health",
            description="Fraction of scrapes in which the instance was healthy.",
            kind="timeseries",
            query="instance_load",
            labels=("instance_id",),
            values=("healthy_frac",),
            value_names=(("healthy_frac", "healthy"),),
            unit="percentunit",
            width=24,
            height=6,
        ),
    ),
)

LEARNING = DashboardSpec(
    uid="lodestar-learning",
    title="Lodestar — learning",
    description="Model versions, training metrics, prediction error, exploration and fallbacks.",
    variables=(POLICY, METRIC, FEATURE, GRACE),
    time_from="now-6h",
    panels=(
        PanelSpec(
            key="model_version",
            title="Model version",
            description="Predictor versions the trainer published.",
            kind="timeseries",
            query="model_versions",
            time_column="ts",
            values=("version",),
            value_names=(("version", "version"),),
        ),
        PanelSpec(
            key="training_metric",
            title="Training metric: ${metric}",
            description="The chosen metric of each published model version (train_loss by default).",
            kind="timeseries",
            query="model_versions",
            time_column="ts",
            values=("metric_value",),
            value_names=(("metric_value", "${metric}"),),
        ),
        PanelSpec(
            key="prediction_error",
            title="Prediction error by model version",
            description="Mean absolute error and bias of the chosen candidate's predicted TTFT vs the measured TTFT.",
            kind="timeseries",
            query="prediction_error",
            labels=("model_version",),
            values=("mae_s", "bias_s"),
            value_names=(("mae_s", "MAE"), ("bias_s", "bias")),
            unit="s",
        ),
        PanelSpec(
            key="predicted_vs_measured",
            title="Predicted vs measured TTFT",
            description="Mean predicted and measured TTFT of the decisions with a prediction.",
            kind="timeseries",
            query="prediction_error",
            labels=("model_version",),
            values=("predicted_mean_s", "measured_mean_s"),
            value_names=(("predicted_mean_s", "predicted"), ("measured_mean_s", "measured")),
            unit="s",
        ),
        PanelSpec(
            key="exploration_rate",
            title="Exploration rate by policy",
            description="Fraction of decisions that explored instead of exploiting the model.",
            kind="timeseries",
            query="exploration",
            labels=("policy",),
            values=("explore_rate",),
            value_names=(("explore_rate", "explored"),),
            unit="percentunit",
        ),
        PanelSpec(
            key="fallback_rate",
            title="Heuristic fallback rate by policy",
            description="Fraction of decisions made by the heuristic fallback (too little data or no confident model).",
            kind="timeseries",
            query="exploration",
            labels=("policy",),
            values=("fallback_rate",),
            value_names=(("fallback_rate", "fallbacks"),),
            unit="percentunit",
        ),
    ),
)

_DROPPED = (
    PromTarget("sum(rate(lodestar_gateway_events_dropped_total[$__rate_interval]))", "gateway outcomes"),
    PromTarget("sum(rate(lodestar_gateway_feedback_dropped_total[$__rate_interval]))", "gateway feedback"),
    PromTarget("sum(rate(lodestar_router_events_dropped_total[$__rate_interval]))", "router decisions"),
    PromTarget("sum(rate(lodestar_collector_events_dropped_total[$__rate_interval]))", "collector states"),
    PromTarget("sum(rate(lodestar_router_undecodable_events_total[$__rate_interval]))", "router undecodable"),
    PromTarget("sum(rate(lodestar_history_dead_lettered_total[$__rate_interval]))", "history dead-lettered"),
    PromTarget("sum(rate(lodestar_history_unstorable_events_total[$__rate_interval]))", "history unstorable"),
    PromTarget("sum(lodestar_trainer_dead_letters)", "trainer dead letters (total)"),
)

PIPELINE = DashboardSpec(
    uid="lodestar-pipeline",
    title="Lodestar — event pipeline",
    description="Dead letters, events the services dropped, decisions without outcomes, stored events.",
    variables=(SOURCE_TOPIC, LIMIT),
    time_from="now-24h",
    panels=(
        PanelSpec(
            key="dead_letters",
            title="Dead letters per source topic",
            description="Events a consumer could not decode, and events the history sink could not store.",
            kind="bars",
            query="dead_letters",
            labels=("source_topic",),
            values=("letters",),
            value_names=(("letters", "letters"),),
            empty_when_healthy=True,
        ),
        PanelSpec(
            key="events_dropped",
            title="Events dropped by the services",
            description="Drop and dead-letter counters of each service's /metrics (Prometheus).",
            kind="timeseries",
            unit="ops",
            promql=_DROPPED,
        ),
        PanelSpec(
            key="event_gaps",
            title="Decisions without outcome / outcomes without decision",
            description="Events missing their pair within the range (requests in flight at the end count too).",
            kind="bars",
            query="event_gaps",
            values=("decisions_without_outcome", "outcomes_without_decision"),
            value_names=(
                ("decisions_without_outcome", "decisions without outcome"),
                ("outcomes_without_decision", "outcomes without decision"),
            ),
        ),
        PanelSpec(
            key="event_counts",
            title="Events stored per table",
            description="Distinct events stored in the range, per ClickHouse table.",
            kind="table",
            query="event_counts",
        ),
        PanelSpec(
            key="dead_letter_list",
            title="Newest dead letters",
            description="The newest dead letters with their reason and the first payload bytes (hex).",
            kind="table",
            query="dead_letter_list",
            width=24,
            height=10,
            empty_when_healthy=True,
        ),
    ),
)

DASHBOARDS: tuple[DashboardSpec, ...] = (ROUTING, FLEET, LEARNING, PIPELINE)
