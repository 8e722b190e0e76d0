-- CLOCK (prepended to heartbeat.lua and reap.lua): the reaper's clock, one
-- key every member shares: Redis's time (ms) of the last heartbeat or
-- reaper round, whoever sent it, and from when rounds may judge heartbeats.
-- Members beat and reap every fraction of a second, so a gap of over
-- `still` ms (long enough to expire a heartbeat) means that Redis stood
-- still (stopped, a slow fork or disk, a paused VM) or that nobody was up.
-- Either way heartbeats may have expired although no member died: nobody
-- is judged for the next `grace` ms, while every member beats again.
-- Returns the time (ms) from which rounds may judge, and now.
local function touch_clock(clock, still, grace)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  -- (A key of another type, written by anyone with access, counts as none:
  -- the SET below replaces it.)
  local ok, value = pcall(redis.call, 'GET', clock)
  if not ok or type(value) ~= 'string' then value = '' end
  local last, from = string.match(value, '^(%d+) (%d+)$')
  last, from = tonumber(last) or 0, tonumber(from) or 0
  -- No `from` further ahead than `grace` (a clock set back, or a value
  -- written by hand).
  if from > now + grace then from = now + grace end
  -- A clock set forward looks like a stillness, and is as harmful:
  -- heartbeats expire by it. A hold starts only after `grace` of Redis
  -- running since the last one ended: a Redis that keeps stalling cannot
  -- hold the reaper for ever (a dead node's calls would never be answered).
  if now - last > still and last - from >= grace then from = now + grace end
  redis.call('SET', clock, string.format('%d %d', now, from), 'PX', 600000)
  return from, now
end
