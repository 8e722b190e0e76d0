-- CANCEL: cancels one call of a caller. If no node has claimed its entry
-- yet, deletes it ("queued"); if a node holds it, tells that node to stop
-- it ("running": the control stream's `x <caller> <seq>`, and the entry's
-- body is deleted so that no redelivery can run it again); if the entry is
-- gone, the call was settled and its outcome is on its way ("gone").
--
-- KEYS: tasks, ctl. ARGV: group, caller, seq, entry id ("" if unknown; the
-- entry is then looked for, as it is when a redelivery gave it a new id).
-- (tell.lua comes first.)
local tasks, ctl = KEYS[1], KEYS[2]
local group, caller, seq, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- (An entry queued again after its node was lost running it carries that
-- node's name in `l`: it may have run there, so it is not "queued".)
local lost_on = nil
local function mine(e)
  local f, c, i, l = e[2], nil, nil, nil
  for k = 1, #f, 2 do
    if f[k] == 'c' then c = f[k + 1] elseif f[k] == 'i' then i = f[k + 1]
    elseif f[k] == 'l' then l = f[k + 1] end
  end
  if c == caller and i == seq then
    lost_on = l
    return true
  end
  return false
end
local entry = nil
if id ~= '' then
  local e = redis.call('XRANGE', tasks, id, id)
  if #e == 1 and mine(e[1]) then entry = e[1][1] end
end
local cursor = '-'
while not entry do
  local es = redis.call('XRANGE', tasks, cursor, '+', 'COUNT', 1000)
  for _, e in ipairs(es) do
    if mine(e) then entry = e[1] break end
  end
  if entry or #es < 1000 then break end
  cursor = '(' .. es[#es][1]
end
if not entry then return 'gone' end
local running = #redis.call('XPENDING', tasks, group, entry, entry, 1) == 1
if running then
  tell_nodes(ctl, 'x', caller .. ' ' .. seq)
end
-- A running call's body goes too (its pending record stays, for the node
-- that holds it to settle): if that node dies, the reaper finds nothing to
-- queue again, and a cancelled call never runs on another node.
redis.call('XDEL', tasks, entry)
if running then return 'running' end
if type(lost_on) == 'string' then return 'lost' end
return 'queued'
