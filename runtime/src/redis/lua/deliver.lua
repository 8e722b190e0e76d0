-- DELIVER: settles entries a node ran. For each, only if the entry is still
-- in the group's pending list under this node's consumer name and the node
-- is still registered: writes the outcome to the caller's result stream
-- (unless the caller is gone, or the entry names no caller), acknowledges and deletes the entry.
-- Otherwise does nothing: the node was declared dead and the entry reaped
-- (NodeLost or redelivered), and this late outcome is dropped (fencing);
-- or, the node being still registered, the entry is no longer pending
-- under it because this node settled it already (this same DELIVER, sent
-- again after its reply was lost: nobody else takes a live node's
-- entries), or it is another call under the same id. XACK alone does not
-- check who owns an entry; this does.
--
-- KEYS: tasks, members, result streams... ARGV: group, node, count, check,
-- then per outcome: entry id, key index (into KEYS), caller, seq, status,
-- body. `check` '1': each entry is settled only if it still holds the same
-- call (below); the node asks for it when it sends a DELIVER again, or
-- holds an id a new claim returned again: reading every entry back costs
-- Redis as much as the XDEL, on every call.
-- Returns per outcome 1 written, 2 dropped (caller gone), 0 fenced (the
-- node was declared dead), 3 settled already.
local tasks, members = KEYS[1], KEYS[2]
local group, node, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local check = ARGV[4] == '1'
local live = redis.call('HEXISTS', members, node) == 1
local out = {}
for j = 0, n - 1 do
  local b = 5 + j * 6
  local entry = ARGV[b]
  local owned = live and #redis.call('XPENDING', tasks, group, entry, entry, 1, node) == 1
  -- And the same call: a task stream that lost its data can give a new
  -- call an id this node settled a moment ago, and this DELIVER, sent again
  -- after its reply was lost, must not settle that call with the old one's
  -- outcome (the new call would never run, nor be answered). Compared when
  -- the outcome names the call (a malformed entry's names no seq: 0).
  if check and owned and ARGV[b+2] ~= '' and ARGV[b+3] ~= '0' then
    local e = redis.call('XRANGE', tasks, entry, entry)[1]
    local c, i
    if e then
      for k = 1, #e[2], 2 do
        if e[2][k] == 'c' then c = e[2][k + 1] elseif e[2][k] == 'i' then i = e[2][k + 1] end
      end
    end
    if c ~= nil and i ~= nil and (c ~= ARGV[b+2] or tonumber(i) ~= tonumber(ARGV[b+3])) then
      owned = false
    end
  end
  if not live then
    out[#out + 1] = 0
  elseif not owned then
    out[#out + 1] = 3
  else
    if redis.call('HGET', members, ARGV[b+2]) == 'caller' then
      redis.call('XADD', KEYS[tonumber(ARGV[b+1])], '*', 'i', ARGV[b+3],
        's', ARGV[b+4], 'b', ARGV[b+5], 'n', node)
      out[#out + 1] = 1
    else
      out[#out + 1] = 2
    end
    redis.call('XACK', tasks, group, entry)
    redis.call('XDEL', tasks, entry)
  end
end
return out
