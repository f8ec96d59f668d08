-- One write batch of sessionware's Redis store, applied atomically on the server.
-- ARGV: prefix, epoch, op count, then each op as a tag and its fields:
--   C sid exclusive header parent_id created_at updated_at score totals   (create)
--   H sid header parent_id updated_at                                    (save header)
--   A sid count updated_at (event_id body)*count                        (append; bodies without seq)
--   P sid count (page_id body)*count                                     (put pages)
--   D sid must_exist                                                     (delete)
-- Returns {'ok', appended, duplicates, sid, last_seq, ...} or {'reset', epoch},
-- {'exists', sid}, {'missing', sid}. Every op is checked before any is applied.
local p = ARGV[1]
local epoch = redis.call('GET', p .. ':epoch')
if epoch ~= ARGV[2] then
  return {'reset', epoch or ''}
end

local known = {}
local function has(sid)
  local v = known[sid]
  if v == nil then
    v = redis.call('EXISTS', p .. ':s:' .. sid) == 1
    known[sid] = v
  end
  return v
end

local n = tonumber(ARGV[3])
local first = 4
local i = first
for _ = 1, n do
  local tag, sid = ARGV[i], ARGV[i + 1]
  if tag == 'C' then
    if has(sid) then
      if ARGV[i + 2] == '1' then return {'exists', sid} end
    else
      known[sid] = true
    end
    i = i + 9
  elseif tag == 'H' then
    if not has(sid) then return {'missing', sid} end
    i = i + 5
  elseif tag == 'A' then
    if not has(sid) then return {'missing', sid} end
    i = i + 4 + 2 * tonumber(ARGV[i + 2])
  elseif tag == 'P' then
    if not has(sid) then return {'missing', sid} end
    i = i + 3 + 2 * tonumber(ARGV[i + 2])
  elseif tag == 'D' then
    if has(sid) then
      known[sid] = false
    elseif ARGV[i + 2] == '1' then
      return {'missing', sid}
    end
    i = i + 3
  else
    return redis.error_reply('sessionware: unknown op ' .. tostring(tag))
  end
end

local appended, duplicates = 0, 0
local result = {'ok', 0, 0}
i = first
for _ = 1, n do
  local tag, sid = ARGV[i], ARGV[i + 1]
  local s = p .. ':s:' .. sid
  if tag == 'C' then
    if redis.call('EXISTS', s) == 0 then
      redis.call('HSET', s, 'header', ARGV[i + 3], 'parent_id', ARGV[i + 4], 'created_at', ARGV[i + 5],
        'updated_at', ARGV[i + 6], 'last_seq', 0, 'folded', 0, 'totals', ARGV[i + 8])
      redis.call('ZADD', p .. ':index', ARGV[i + 7], sid)
      if ARGV[i + 4] ~= '' then
        redis.call('ZADD', p .. ':kids:' .. ARGV[i + 4], ARGV[i + 7], sid)
      end
    end
    i = i + 9
  elseif tag == 'H' then
    redis.call('HSET', s, 'header', ARGV[i + 2], 'parent_id', ARGV[i + 3], 'updated_at', ARGV[i + 4])
    i = i + 5
  elseif tag == 'A' then
    local count = tonumber(ARGV[i + 2])
    local ids, log = p .. ':ids:' .. sid, p .. ':e:' .. sid
    local last = tonumber(redis.call('HGET', s, 'last_seq'))
    local before = last
    local j = i + 4
    for _ = 1, count do
      if redis.call('HSETNX', ids, ARGV[j], last + 1) == 1 then
        last = last + 1
        redis.call('RPUSH', log, '{"seq":' .. last .. ',' .. string.sub(ARGV[j + 1], 2))
      else
        duplicates = duplicates + 1
      end
      j = j + 2
    end
    if last > before then
      appended = appended + (last - before)
      redis.call('HSET', s, 'last_seq', last, 'updated_at', ARGV[i + 3])
    end
    result[#result + 1] = sid
    result[#result + 1] = last
    i = j
  elseif tag == 'P' then
    local count = tonumber(ARGV[i + 2])
    local j = i + 3
    for _ = 1, count do
      redis.call('HSET', p .. ':pg:' .. sid, ARGV[j], ARGV[j + 1])
      j = j + 2
    end
    i = j
  elseif tag == 'D' then
    local parent = redis.call('HGET', s, 'parent_id')
    if parent then
      redis.call('DEL', s, p .. ':e:' .. sid, p .. ':ids:' .. sid, p .. ':pg:' .. sid, p .. ':kids:' .. sid)
      redis.call('ZREM', p .. ':index', sid)
      if parent ~= '' then redis.call('ZREM', p .. ':kids:' .. parent, sid) end
    end
    i = i + 3
  end
end
result[2] = appended
result[3] = duplicates
return result
