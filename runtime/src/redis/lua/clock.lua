-- CLOCK (prepended to heartbeat.lua and reap.lua): the reaper's clock, one
-- key every member shares: Redis's time (ms) of the last heartbeat or
-- reaper round, whoever sent it, and from when rounds may judge heartbeats.
-- Members beat and reap every fraction of a second, so a gap of over
-- `still` ms means that Redis stood still (stopped, a slow fork or disk, a
-- paused VM) or that nobody was up. Either way every heartbeat may have
-- expired at once although no member died: nobody is judged for the next
-- `grace` ms, while every member beats again.
-- Returns the time (ms) from which rounds may judge, and now.
local function touch_clock(clock, still, grace)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local last, from = string.match(redis.call('GET', clock) or '', '^(%d+) (%d+)$')
  last, from = tonumber(last) or 0, tonumber(from) or 0
  -- (A clock set forward looks the same, and is as harmful: heartbeats
  -- expire by it. One set back leaves no `from` further than `grace` ahead.)
  if now - last > still or from > now + grace then from = now + grace end
  redis.call('SET', clock, string.format('%d %d', now, from), 'PX', 600000)
  return from, now
end
