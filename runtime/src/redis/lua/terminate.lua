-- TERMINATE: deletes up to `count` of a caller's entries that no node has
-- claimed yet, scanning from `cursor` (exclusive; `-` to start at the
-- group's last delivered id). With `first` = 1 (terminate's first call) it
-- first unregisters the caller (so every later outcome for it is dropped),
-- deletes its result stream and heartbeat, and tells the nodes to stop its
-- calls; with `first` = 0 it only deletes (close_and_cancel).
-- Returns {next cursor, or "" when done, seqs of the deleted entries...},
-- a seq as `seq:node` for an entry queued again after `node` was lost
-- while running it (see reap.lua).
--
-- KEYS: tasks, members, ctl, results, alive. ARGV: group, caller, first,
-- cursor, count. (tell.lua comes first.)
local tasks, members, ctl = KEYS[1], KEYS[2], KEYS[3]
local group, caller, first, cursor, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if first == '1' then
  redis.call('HDEL', members, caller, 'hw:' .. caller)
  redis.call('DEL', KEYS[4], KEYS[5])
  tell_nodes(ctl, 'c', caller)
end
local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local ldi = '0-0'
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', tasks)
if not ok then return {''} end
for _, g in ipairs(groups) do
  local h = {}
  for k = 1, #g, 2 do h[g[k]] = g[k + 1] end
  if h['name'] == group then ldi = h['last-delivered-id'] end
end
if cursor == '-' or before(cursor, ldi) then cursor = ldi end
local entries = redis.call('XRANGE', tasks, '(' .. cursor, '+', 'COUNT', count)
local out = {''}
for _, e in ipairs(entries) do
  local f, c, i, l = e[2], nil, nil, nil
  for k = 1, #f, 2 do
    if f[k] == 'c' then c = f[k + 1] elseif f[k] == 'i' then i = f[k + 1]
    elseif f[k] == 'l' then l = f[k + 1] end
  end
  if c == caller then
    redis.call('XDEL', tasks, e[1])
    if type(l) == 'string' and type(i) == 'string' then
      out[#out + 1] = i .. ':' .. l
    else
      out[#out + 1] = i
    end
  end
end
if #entries == count then out[1] = entries[#entries][1] end
return out
