-- CLOCK (prepended to heartbeat.lua and reap.lua): the reaper's clock, one
-- hash every member shares: `last`, Redis's time (ms) of the last heartbeat
-- or reaper round, whoever sent it, and `from`, when rounds may judge
-- heartbeats again. Members beat and reap every fraction of a second, so a
-- gap of over `still` ms (long enough to expire a heartbeat) means that
-- Redis stood still (stopped, a slow fork or disk, a paused VM) or that
-- nobody was up. Either way heartbeats may have expired although no member
-- died: nobody is judged for the next `grace` ms, while every member beats
-- again.
-- Returns the time (ms) from which rounds may judge, and now.
local function touch_clock(clock, still, grace)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  -- (A key of another type, written by anyone with access, is replaced.)
  local ok, got = pcall(redis.call, 'HMGET', clock, 'last', 'from')
  if not ok then
    redis.call('DEL', clock)
    got = {}
  end
  -- (Missing: Redis stood still past the key's life, or it was deleted.)
  local last, from = tonumber(got[1]) or 0, tonumber(got[2]) or -1e15
  -- No `from` further ahead than `grace` (a clock set back, or a value
  -- written by hand).
  if from > now + grace then from = now + grace end
  -- A clock set forward looks like a stillness, and is as harmful:
  -- heartbeats expire by it. A hold starts only after `grace` of Redis
  -- running since the last one ended: a Redis that keeps stalling cannot
  -- hold the reaper for ever (a dead node's calls would never be answered).
  if now - last > still and last - from >= grace then from = now + grace end
  -- (Long ago is ten minutes ago: both fields always hold numbers of the
  -- same size, and so does the key.)
  if from < now - 600000 then from = now - 600000 end
  redis.call('HSET', clock, 'last', string.format('%d', now), 'from', string.format('%d', from))
  redis.call('PEXPIRE', clock, 600000)
  return from, now
end
