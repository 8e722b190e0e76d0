-- GROUP (prepended to reap.lua and group_made.lua): makes the task
-- stream's consumer group if it is gone: at a member's registration
-- (callers and nodes both may come first), or in a reaper round after the
-- stream was deleted by hand or evicted, or the group destroyed. Without
-- it every node's claims fail (NOGROUP) and the callers' new calls wait in
-- a stream nobody reads. The group starts at `0`, so calls queued before
-- the first node came are served.
--
-- The calls a lost stream held are lost: each making of the group leaves a
-- new mark, `regroups` in the reaper's clock (one more than before, or
-- Redis's time in ms if that is larger: a clock deleted or evicted with
-- the stream, its count started over, must not give a mark a caller saw
-- before), and a caller that sees the mark change checks which of its
-- calls Redis still has (verify.lua). One script makes and marks, so no
-- making goes unmarked.
-- Returns true if it made the group; a key of another type (written by
-- anyone with access) is left alone.
local function ensure_group(tasks, group, clock)
  if redis.call('EXISTS', tasks) == 1 then
    local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', tasks)
    if not ok then return false end
    for _, g in ipairs(groups) do
      for k = 1, #g - 1, 2 do
        if g[k] == 'name' and g[k + 1] == group then return false end
      end
    end
  end
  redis.call('XGROUP', 'CREATE', tasks, group, '0', 'MKSTREAM')
  redis.call('PEXPIRE', tasks, IDLE_MS)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- (A clock of another type, written by anyone with access, leaves this
  -- making unmarked; the next reaper round replaces the clock.)
  local ok, n = pcall(redis.call, 'HGET', clock, 'regroups')
  if ok then
    n = tonumber(n) or 0
    redis.call('HSET', clock, 'regroups', string.format('%d', math.max(n + 1, now)))
  end
  return true
end
