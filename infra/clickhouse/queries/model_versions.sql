-- Predictor versions published by the trainer, oldest first, with one chosen training metric.
-- metric_value is NULL when the version did not report that metric.
-- @param from_ts = now-7d  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param metric = 'train_loss'  -- key of ModelUpdate.metrics returned as metric_value (trainer: train_loss, val_mae_log_ttft, val_spread_log_ttft, steps)
SELECT
    ts,
    version,
    parent_version,
    feature_schema_version,
    weights_format,
    weights_bytes,
    weights_sha256,
    trained_samples,
    if(mapContains(metrics, {metric:String}), metrics[{metric:String}], NULL) AS metric_value,
    metrics
FROM model_updates FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
ORDER BY ts, version
