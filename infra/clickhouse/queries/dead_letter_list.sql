-- The newest dead letters with their reason and the first bytes of the payload (hex).
-- @param from_ts = now-1d  -- start of the range (inclusive)
-- @param to_ts = now  -- end of the range (exclusive)
-- @param source_topic = ''  -- only letters from this topic ('' = every topic)
-- @param limit = 100  -- at most this many rows
SELECT
    ts,
    event_id,
    source_topic,
    source_partition,
    source_offset,
    reason,
    field,
    payload_bytes,
    hex(payload_head) AS payload_head_hex
FROM dead_letters FINAL
WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND ts < {to_ts:DateTime64(3, 'UTC')}
  AND ({source_topic:String} = '' OR source_topic = {source_topic:String})
ORDER BY ts DESC, event_id
LIMIT {limit:UInt32}
