"""Lua scripts of the event write path and the packing of their arguments."""

from __future__ import annotations

from collections.abc import Iterable

# Each script touches exactly one key, so it runs on Redis Cluster too. Their many members or
# fields travel packed in one argument: a script call with 2,000 separate arguments costs the
# client more to encode than Redis spends running it. Ids are validated ([A-Za-z0-9._:~-]), so
# neither newlines nor spaces can occur inside one.
ADD_NEW_MEMBERS = """
local members, n = {}, 0
for member in string.gmatch(ARGV[2], '[^\\n]+') do
  n = n + 1
  members[n] = member
end
local added = {}
for first = 1, n, 1000 do
  local last = math.min(first + 999, n)
  local present = redis.call('SMISMEMBER', KEYS[1], unpack(members, first, last))
  redis.call('SADD', KEYS[1], unpack(members, first, last))
  for i = 1, #present do added[first + i - 1] = 1 - present[i] end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return table.concat(added)
"""
"""Add the distinct newline-separated members of ARGV[2] to the set (SMISMEMBER, then one
SADD per 1,000: Redis 6.2+); reply: one character per member, "1" for the ones that were new,
"0" for the rest; then refresh the TTL (ARGV[1]). Atomic, as every script is."""

INCREMENT_FIELDS = """
for field, amount in string.gmatch(ARGV[2], '(%S+) (%S+)') do
  redis.call('HINCRBYFLOAT', KEYS[1], field, amount)
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
"""HINCRBYFLOAT the "field amount" pairs of ARGV[2] (space-separated) in one hash, then refresh
its TTL (ARGV[1])."""


def pack_members(members: Iterable[str]) -> str:
    """ADD_NEW_MEMBERS' ARGV[2] (members must be distinct)."""
    return "\n".join(members)


def pack_increments(pieces: Iterable[str]) -> str:
    """INCREMENT_FIELDS' ARGV[2] from "field amount" pieces (see increment_piece)."""
    return " ".join(pieces)


def increment_piece(field: str, amount: float) -> str:
    """One field and the amount to add to it, as INCREMENT_FIELDS reads them."""
    return f"{field} {amount!r}"
