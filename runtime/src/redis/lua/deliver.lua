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
-- holds an id a new claim returned again: reading every entry back (an
-- XRANGE each) would cost Redis more than its deletion, on every call.
-- Returns per outcome 1 written, 2 dropped (caller gone), 0 fenced (the
-- node was declared dead), 3 settled already.
local tasks, members = KEYS[1], KEYS[2]
local group, node, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local check = ARGV[4] == '1'
local live = redis.call('HEXISTS', members, node) == 1
local out = {}
-- The entries settled here, acknowledged and deleted together (one XACK,
-- one XDEL, newest first: Redis deletes a stream's entries at about half
-- the cost that way as one by one from the oldest), at the end or before
-- an error ends the script: what was settled stays settled, as when each
-- was acknowledged at once (a DELIVER sent again finds it so). An entry
-- named twice is settled once.
local settled, seen = {}, {}
local function flush()
  if #settled == 0 then return end
  redis.call('XACK', tasks, group, unpack(settled))
  -- (Mostly in the order claimed, the newest last: reversed. The order
  -- changes only the cost.)
  local newest_first = {}
  for k = #settled, 1, -1 do newest_first[#newest_first + 1] = settled[k] end
  redis.call('XDEL', tasks, unpack(newest_first))
end
for j = 0, n - 1 do
  local b = 5 + j * 6
  local entry = ARGV[b]
  local owned = live and not seen[entry]
    and #redis.call('XPENDING', tasks, group, entry, entry, 1, node) == 1
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
      local added = redis.pcall('XADD', KEYS[tonumber(ARGV[b+1])], '*', 'i', ARGV[b+3],
        's', ARGV[b+4], 'b', ARGV[b+5], 'n', node)
      if type(added) == 'table' and added.err then
        flush()
        return added
      end
      out[#out + 1] = 1
    else
      out[#out + 1] = 2
    end
    settled[#settled + 1] = entry
    seen[entry] = true
  end
end
flush()
return out
