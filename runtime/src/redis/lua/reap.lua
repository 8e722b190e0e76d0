-- REAP: declares dead every group consumer whose heartbeat key has expired
-- and settles up to `limit` of its pending entries: added again with one
-- redelivery fewer if it has any left (and the dead node's name as `l`:
-- the call may have run there), otherwise answered NodeLost (status `l`); an entry whose caller is no longer registered is just dropped
-- (terminated or dead, it waits for nothing). Then forgets members without
-- heartbeat: a caller's result stream, high-water mark and registration go, and nodes are told to stop its calls
-- (its entries no node has claimed are deleted next, by the reaper, through
-- TERMINATE: a scan of the stream is too long for one script).
--
-- A round judges nobody while the reaper's clock says Redis stood still a
-- moment ago (see clock.lua), nor with `judge` = 0 (a member connected a
-- moment ago: it only keeps the clock).
--
-- KEYS: tasks, members, ctl, reaper clock. ARGV: group, prefix, limit,
-- still ms, grace ms, judge (1 or 0). (IDLE_MS, clock.lua, tell.lua and
-- group.lua come first.)
-- Returns {lost, requeued, {names of the callers forgotten}, regroups (the
-- mark of the last making of the task stream's group: see group.lua)}.
local tasks, members, ctl, clock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, prefix, budget = ARGV[1], ARGV[2], tonumber(ARGV[3])
local still, grace = tonumber(ARGV[4]), tonumber(ARGV[5])
local lost, requeued, callers = 0, 0, {}
local from, now = touch_clock(clock, still, grace)
-- Stops older than tell.lua keeps go every round too, not only when a new
-- stop comes: after a burst of cancels, the control stream empties by
-- itself and Redis's memory returns to its baseline. (pcall: a key of
-- another type, written by anyone with access, must not stop the round.)
do
  local t = redis.call('TIME')
  pcall(redis.call, 'XTRIM', ctl, 'MINID', string.format('%d', tonumber(t[1]) * 1000 - 600000))
end
-- The queue's lasting keys live a week past the last round of any member
-- (keys.rs: IDLE_MS is prepended from IDLE_EXPIRY), so a build nobody runs
-- any more leaves nothing in Redis for good.
for _, k in ipairs({tasks, members, prefix .. 'ids'}) do
  redis.call('PEXPIRE', k, IDLE_MS)
end
-- The task stream's consumer group is made again if it is gone, and the
-- making marked (group.lua).
ensure_group(tasks, group, clock)
local regroups = tonumber(redis.call('HGET', clock, 'regroups')) or 0
if now < from or ARGV[6] ~= '1' then return {0, 0, {}, regroups} end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', tasks, group)
if not ok then consumers = {} end
for _, c in ipairs(consumers) do
  local name = c[2]
  if budget > 0 and redis.call('EXISTS', prefix .. 'alive:' .. name) == 0 then
    redis.call('HDEL', members, name, 'p:' .. name)
    local pend = redis.call('XPENDING', tasks, group, '-', '+', budget, name)
    for _, p in ipairs(pend) do
      local id = p[1]
      local e = redis.call('XRANGE', tasks, id, id)
      if #e == 1 then
        local f, h = e[1][2], {}
        for k = 1, #f, 2 do h[f[k]] = f[k + 1] end
        -- Fields come from the stream, which anyone with access can write:
        -- a missing or malformed one must not stop the script (it runs
        -- again every round, after its HDEL above, and would never settle
        -- any later entry). Such an entry is answered if it can be, and
        -- dropped otherwise.
        local r = tonumber(h['r']) or 0
        -- NaN or negative: no redelivery. Over what a caller can ask for
        -- (`redeliver` takes a u32; u32::MAX means "as often as it
        -- takes"), infinite included: that most, not none.
        if r ~= r or r < 0 then r = 0 elseif r > 4294967295 then r = 4294967295 end
        r = math.floor(r)
        local whole = true
        for _, k in ipairs({'c', 'i', 't', 'f', 'k', 'a'}) do
          if type(h[k]) ~= 'string' then whole = false end
        end
        -- Only a registered caller's call goes round again or is answered:
        -- one that terminated or was declared dead waits for nothing.
        local registered = type(h['c']) == 'string'
          and redis.call('HGET', members, h['c']) == 'caller'
        if r > 0 and whole and registered then
          redis.call('XADD', tasks, '*', 'c', h['c'], 'i', h['i'], 't', h['t'],
            'f', h['f'], 'k', h['k'], 'r', tostring(r - 1), 'o', h['o'] or '', 'a', h['a'],
            'l', name)
          requeued = requeued + 1
        elseif registered and type(h['i']) == 'string' then
          redis.call('XADD', prefix .. 'res:' .. h['c'], '*', 'i', h['i'],
            's', 'l', 'b', '', 'n', name)
          redis.call('PEXPIRE', prefix .. 'res:' .. h['c'], IDLE_MS)
          lost = lost + 1
        end
      end
      redis.call('XACK', tasks, group, id)
      redis.call('XDEL', tasks, id)
    end
    if #pend < budget then
      redis.call('XGROUP', 'DELCONSUMER', tasks, group, name)
    end
    budget = budget - #pend
  end
end
local all = redis.call('HGETALL', members)
for k = 1, #all, 2 do
  local name, kind = all[k], all[k + 1]
  if (kind == 'caller' or kind == 'node') and redis.call('EXISTS', prefix .. 'alive:' .. name) == 0 then
    redis.call('HDEL', members, name, 'p:' .. name)
    if kind == 'caller' then
      redis.call('HDEL', members, 'hw:' .. name)
      redis.call('DEL', prefix .. 'res:' .. name)
      tell_nodes(ctl, 'c', name)
      callers[#callers + 1] = name
    end
  elseif kind == 'caller' then
    -- A live caller's result stream lives a week past the last round too
    -- (renewed here, off the path of every outcome; registration made it
    -- with its time to live, which the outcomes' XADDs keep).
    redis.call('PEXPIRE', prefix .. 'res:' .. name, IDLE_MS)
  end
end
return {lost, requeued, callers, regroups}
