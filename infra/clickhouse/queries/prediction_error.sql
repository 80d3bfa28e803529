-- Predicted vs measured TTFT per model version per time bucket. The prediction is the chosen
-- candidate's first feature whose name ends with `feature` (e.g. "estimated_ttft.predicted_ttft_s");
-- decisions without such a feature or without a measured TTFT are skipped. Outcomes are matched
-- by decision id up to grace_s after the range (a request finishes after it was routed).
-- @param from_ts = now-1h  -- start of the range (inclusive), on decision time
-- @param to_ts = now  -- end of the range (exclusive), on decision time
-- @param bucket_s = 60  -- bucket width in seconds
-- @param policy = ''  -- only this policy ('' = every policy)
-- @param feature = 'predicted_ttft_s'  -- suffix of the chosen candidate's prediction feature
-- @param grace_s = 600  -- how long after to_ts outcomes are still matched
SELECT
    toStartOfInterval(d.ts, toIntervalSecond({bucket_s:UInt32})) AS t,
    d.model_version AS model_version,
    count() AS samples,
    avg(abs(d.predicted_s - o.measured_s)) AS mae_s,
    avg(d.predicted_s - o.measured_s) AS bias_s,
    avg(d.predicted_s) AS predicted_mean_s,
    avg(o.measured_s) AS measured_mean_s
FROM
(
    SELECT
        ts,
        decision_id,
        model_version,
        arrayFirst(k -> endsWith(k, {feature:String}), mapKeys(chosen_features)) AS feature_key,
        chosen_features[feature_key] AS predicted_s
    FROM route_decisions FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
      AND ({policy:String} = '' OR policy = {policy:String})
      AND feature_key != ''
) AS d
INNER JOIN
(
    SELECT decision_id, any(ttft_s) AS measured_s
    FROM request_outcomes FINAL
    WHERE ts >= {from_ts:DateTime64(3, 'UTC')}
      AND ts < {to_ts:DateTime64(3, 'UTC')} + toIntervalSecond({grace_s:UInt32})
      AND ttft_s IS NOT NULL
    GROUP BY decision_id
) AS o ON o.decision_id = d.decision_id
GROUP BY t, model_version
ORDER BY t, model_version
