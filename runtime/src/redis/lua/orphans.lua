-- ORPHANS: which of the given callers no longer wait for their calls, so a
-- node that claimed them does not run them: a caller not registered (it
-- terminated, or was forgotten), or one whose heartbeat has expired while
-- Redis has been up for longer than its time to live (it was silent that
-- long: dead or cut off). Such a caller is forgotten here, as the reaper
-- would at its next round (a node that has just started waits one time
-- to live before it reaps: after a Redis restart, heartbeats need a moment
-- to come back; Redis's uptime says when that cannot be the reason).
--
-- KEYS: members, ctl. ARGV: prefix, callers... Returns the orphans.
-- (forget.lua comes first.)
local members, ctl, prefix = KEYS[1], KEYS[2], ARGV[1]
local info = redis.call('INFO', 'server')
local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0
local out = {}
for j = 2, #ARGV do
  local c = ARGV[j]
  if redis.call('HGET', members, c) ~= 'caller' then
    out[#out + 1] = c
  elseif redis.call('EXISTS', prefix .. 'alive:' .. c) == 0 then
    local ttl = tonumber(redis.call('HGET', members, 't:' .. c))
    if ttl and up * 1000 > ttl + 1000 then
      forget_caller(members, ctl, prefix, c)
      out[#out + 1] = c
    end
  end
end
return out
