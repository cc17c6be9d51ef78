"""The Lua script of the event write path and the packing of its arguments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# One script call writes a whole batch: Redis runs a script atomically, and an out-of-memory
# Redis refuses a script at its first write (SADD, HINCRBYFLOAT, XADD and SET all need memory;
# after the first, a script runs to its end), so a batch is counted entirely or not at all and
# a producer may retry it. All reads (the batch record, SMISMEMBER) come before the first write.
#
# Its many members, slots and rows travel packed in a few arguments, space- or newline-separated:
# a script call with thousands of separate arguments costs the client more to encode than Redis
# spends running it. Ids are validated ([A-Za-z0-9._:~-]) and caller identities percent-encoded,
# so neither holds whitespace (a dedup member, "who article", holds one space: members are
# newline-separated); rows are JSON of validated values and travel as one JSON array.
RECORD_BATCH = """
local batch_ttl, nsets = tonumber(ARGV[1]), tonumber(ARGV[2])
if batch_ttl > 0 then
  local stored = redis.call('GET', KEYS[2])
  if stored then return {1, stored} end
end
local members, sizes = {}, {}
for member in string.gmatch(ARGV[14], '[^\\n]+') do members[#members + 1] = member end
for size in string.gmatch(ARGV[15], '%d+') do sizes[#sizes + 1] = tonumber(size) end
local repeats, fresh, first = {}, {}, 1
for s = 1, nsets do
  local last, added = first + sizes[s] - 1, {}
  for from = first, last, 1000 do
    local to = math.min(from + 999, last)
    local present = redis.call('SMISMEMBER', KEYS[2 + s], unpack(members, from, to))
    for i = 1, #present do
      if present[i] == 1 then
        repeats[#repeats + 1] = from + i - 1
      else
        added[#added + 1] = members[from + i - 1]
      end
    end
  end
  fresh[s], first = added, last + 1
end
local fields, where, amounts = {}, {}, {}
for field in string.gmatch(ARGV[9], '%S+') do fields[#fields + 1] = field end
for keys in string.gmatch(ARGV[10], '%S+') do where[#where + 1] = keys end
for total in string.gmatch(ARGV[11], '%S+') do amounts[#amounts + 1] = total end
if #repeats > 0 then
  local base, waiting, template_of, templates, removed = {}, {}, {}, {}, {}
  for b in string.gmatch(ARGV[12], '%S+') do base[#base + 1] = tonumber(b) end
  for w in string.gmatch(ARGV[13], '%S+') do waiting[#waiting + 1] = tonumber(w) end
  for t in string.gmatch(ARGV[16], '%d+') do template_of[#template_of + 1] = tonumber(t) end
  for line in string.gmatch(ARGV[17], '[^\\n]+') do templates[#templates + 1] = line end
  for _, c in ipairs(repeats) do
    for slot, weight in string.gmatch(templates[template_of[c] + 1], '(%d+):(%S+)') do
      local s = tonumber(slot) + 1
      removed[s] = (removed[s] or 0) + tonumber(weight)
      waiting[s] = waiting[s] - 1
    end
  end
  for s, minus in pairs(removed) do
    if waiting[s] > 0 then amounts[s] = tonumber(amounts[s]) - minus else amounts[s] = base[s] end
  end
end
for s = 1, nsets do
  local added, key = fresh[s], KEYS[2 + s]
  for from = 1, #added, 1000 do
    redis.call('SADD', key, unpack(added, from, math.min(from + 999, #added)))
  end
  if #added > 0 then redis.call('EXPIRE', key, ARGV[3]) end
end
local touched, hashes, offset = {}, {}, 3 + nsets
for n = 1, #fields do
  local amount = amounts[n]
  if type(amount) == 'string' or amount > 0 then
    local keys = hashes[where[n]]
    if not keys then  -- slots of one bucket and sections share their hashes: parse them once
      keys = {}
      for k in string.gmatch(where[n], '%d+') do
        keys[#keys + 1] = KEYS[offset + tonumber(k)]
        touched[keys[#keys]] = true
      end
      hashes[where[n]] = keys
    end
    for _, key in ipairs(keys) do redis.call('HINCRBYFLOAT', key, fields[n], amount) end
  end
end
for key in pairs(touched) do redis.call('EXPIRE', key, ARGV[4]) end
local accepted = tonumber(ARGV[6]) + #members - #repeats
if accepted > 0 then
  local entry = {'MAXLEN', '~', ARGV[5], '*', ARGV[19], ARGV[18]}
  if #repeats > 0 then
    local skipped = {}
    for i, c in ipairs(repeats) do skipped[i] = tonumber(ARGV[6]) + c - 1 end
    entry[7], entry[8] = ARGV[20], table.concat(skipped, ' ')
  end
  redis.call('XADD', KEYS[1], unpack(entry))
end
local reply = accepted .. ' ' .. (tonumber(ARGV[7]) + #repeats) .. ' ' .. ARGV[8]
if batch_ttl > 0 then redis.call('SET', KEYS[2], reply, 'EX', batch_ttl) end
return {0, reply}
"""
"""Record one event batch. KEYS: the event stream, the batch's reply record (any key when
there is no batch_id), ARGV[2] dedup sets, then the counter hashes. ARGV:
   1 the reply record's TTL (0: no batch_id)    2 the number of dedup sets
   3 the dedup sets' TTL    4 the counter hashes' TTL    5 the stream's approximate cap
   6 events that count whatever happens (their rows come first in the stream entry)
   7 clicks that repeat an earlier one of the batch    8 the reply's rejections (codec)
   9-13 per slot (see live.counters.CounterPlan), space-separated: 9 its article, 10 its key
     positions ("0,4,7"), 11 its weight if every pending event counts, 12 its base weight,
     13 its number of pending events
  14 pending clicks' dedup members, grouped by set, newline-separated
  15 the number of members of each set    16 each pending click's template
  17 templates, "slot:weight ..." lines    18 the stream entry's rows (a JSON array)
  19, 20 the stream entry's fields for the rows and for the rows that did not count

If the batch_id's reply is stored, returns {1, reply} and writes nothing. Otherwise adds the new
members to their sets and the weights of the events that count to the counters (a slot without
repeats adds its weight as Python formatted it; one with repeats has their template weights taken
back out), appends the rows to the stream with the positions of the repeats, and returns
{0, reply}: codec.encode_batch_reply's "accepted deduplicated rejections", stored too (with its
TTL) when there is a batch_id. Only a batch with repeats parses ARGV 12, 13, 16 and 17."""

# Redis Cluster refuses a script whose keys span slots, and a batch's keys do: there a batch is
# written in single-slot steps (live/cluster_events.py), the first of which checks and adds the
# members of one dedup set atomically, so two batches never both count one (session, article).
DEDUP_SET = """
local fresh, added = {}, 0
for member in string.gmatch(ARGV[2], '[^\\n]+') do
  local new = redis.call('SADD', KEYS[1], member)
  fresh[#fresh + 1] = new
  added = added + new
end
if added > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return fresh
"""
"""Add newline-separated members (ARGV[2]) to one dedup set (KEYS[1]) and return, per member,
1 if it was new or 0 if the set held it; set the TTL (ARGV[1]) when any was new, as
RECORD_BATCH does."""


def pack_lines(lines: Iterable[str]) -> str:
    """Newline-separated (members, templates)."""
    return "\n".join(lines)


def pack_slots(
    slots: Sequence[tuple[str, tuple[int, ...]]], totals: Sequence[float]
) -> tuple[str, str, str]:
    """RECORD_BATCH's ARGV[9], [10] and [11]."""
    joined: dict[tuple[int, ...], str] = {}  # slots of one bucket and sections share positions
    for _, where in slots:
        if where not in joined:
            joined[where] = ",".join(map(str, where))
    return (
        " ".join([article for article, _ in slots]),
        " ".join([joined[where] for _, where in slots]),
        " ".join(map(repr, totals)),
    )


def pack_fallbacks(base: Sequence[float], waiting: Sequence[int]) -> tuple[str, str]:
    """RECORD_BATCH's ARGV[12] and [13]."""
    return " ".join(map(repr, base)), " ".join(map(str, waiting))


def pack_templates(templates: Sequence[Sequence[tuple[int, float]]]) -> str:
    """RECORD_BATCH's ARGV[17]."""
    shown: dict[float, str] = {}  # events of a batch mostly share a time, so their weights
    lines = []
    for pieces in templates:
        parts = []
        for slot, weight in pieces:
            text = shown.get(weight)
            if text is None:
                text = shown[weight] = repr(weight)
            parts.append(f"{slot}:{text}")
        lines.append(" ".join(parts))
    return "\n".join(lines)
