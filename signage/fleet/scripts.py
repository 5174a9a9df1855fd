"""The fleet's Redis keyspace, and the Lua scripts that read and change it in one step.

Times in Redis are Redis's (TIME), never a host's: hosts' clocks may be minutes apart (a Pi
after a boot without network), and comparing them would call dead data fresh, or fresh data
stale. Writers send ages, the scripts stamp them with TIME, readers keep the age.
"""

from __future__ import annotations

from typing import Any

import redis

# The keyspace. A key with {} is completed with str.format (a floor, process or token key).
LEASE = "signage:lease:{}"  # a floor's lease: the id of the process holding its upstream socket
STATE = "signage:floor:{}"  # a floor's state hash: epoch, seq, snapshot, stored 'at', 'heard'
UPDATES = "signage:u:"  # + floor id: the channel a floor's updates are published on
DISPLAY_CHANNEL = "signage:display"  # display commands and nudges, for every process
REPORT = "signage:proc:{}"  # a process's report of what it holds (expires with the process)
PROCS = "signage:procs"  # sorted set: every process that reported lately (ids only)
TOKEN = "signage:token:{}"  # a shared Density token (hash); its renewal lock + ":lock"
RATE_BUCKET = "signage:rate:bucket"  # the fleet's token bucket for Density's rate limit
RATE_PAUSE = "signage:rate:pause"  # set while Density asked the fleet to wait (a 429)
ATTEMPTS = "signage:attempts:{}:{}"  # a limiter's attempts for one hashed address or user
ALERTS_SEEN = "signage:alerts:seen"  # sorted set: display id -> when a process last held it
ALERT_DOWN = "signage:alerts:down:{}:{}"  # an outage's report claimed by one process (kind, id)


def age(stamp: Any, redis_now: float) -> float | None:
    """Seconds from a stamp in the state hash to Redis's `redis_now`; None without a stamp."""
    try:
        return max(0.0, redis_now - float(stamp)) if stamp not in (None, "") else None
    except (TypeError, ValueError):
        return None  # not a time: as if never heard


def age_arg(age_s: float | None) -> str:
    """An age (seconds) as a script's argument: "" when there is none."""
    return "" if age_s is None else repr(max(0.0, float(age_s)))


# Opens each script that stamps or ages a time: `now`, in seconds on Redis's clock.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: lease, state hash. ARGV: holder id, ttl ms, heard age (s, or ""), want ("1"/"0").
# Atomic: renewing a lease we hold (and recording when the holder last heard from Density),
# taking a free one, and reading the floor's fleet state with Redis's time, in one round trip.
ROUND = (
    _NOW
    + """
local cur = redis.call('GET', KEYS[1])
local mine = 0
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  mine = 1
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], 'heard', tostring(now - tonumber(ARGV[3])))
  end
elseif not cur and ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  mine = 2
end
local st = redis.call('HMGET', KEYS[2], 'epoch', 'seq', 'heard')
return {mine, st[1], st[2], st[3], tostring(now)}
"""
)

# KEYS: lease, state hash. ARGV: holder id, epoch, seq. Atomic: the lease check and creating
# the floor's epoch when Redis has none (first use, or Redis restarted without its data).
INIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local st = redis.call('HMGET', KEYS[2], 'epoch', 'seq')
if st[1] then return {1, st[1], st[2]} end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', ARGV[3])
return {1, ARGV[2], ARGV[3]}
"""

# KEYS: lease, state hash. ARGV: holder id, epoch, seq, snapshot, update text, channel, heard
# age (s, or ""). Atomic: fencing (only the lease holder publishes, in its epoch, with a higher
# seq), storing the snapshot, and publishing the update: no two writers, no lost snapshot.
PUBLISH = (
    _NOW
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local st = redis.call('HMGET', KEYS[2], 'epoch', 'seq')
if st[1] and st[1] ~= ARGV[2] then return -2 end
if st[2] and tonumber(st[2]) >= tonumber(ARGV[3]) then return -3 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', ARGV[3], 'snapshot', ARGV[4],
  'at', tostring(now))
if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'heard', tostring(now - tonumber(ARGV[7]))) end
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 1
"""
)

# KEYS: a key. ARGV: expected value. Atomic compare-and-delete (a lease, a lock): never
# another process's.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: token hash. ARGV: access token. Atomic: drop the shared token only if it is still that
# one (another process may have renewed it meanwhile).
DROP_TOKEN = """
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: bucket hash, pause key. ARGV: rate (per s), burst. Answers 0 (slot taken) or the
# milliseconds to wait. Atomic: refill and take from one bucket on Redis's clock, so hosts
# with skewed clocks share it.
TAKE = """
local p = redis.call('PTTL', KEYS[2])
local rate = tonumber(ARGV[1]) / 1000.0
if p > 0 then return p + math.ceil(1 / rate) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens >= 0.999999 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], 600000)
return wait
"""

# KEYS: bucket hash, pause key. ARGV: milliseconds. Atomic: the pause and an empty bucket from
# its end (as the local limiter restarts), so every process waits the same.
PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[2]) >= ms then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'tokens', '0', 'ts', tostring(now + ms))
redis.call('PEXPIRE', KEYS[1], 600000)
return 1
"""

# Sign-in and pairing attempts (a sorted set of Redis times per key). KEYS[1] the key; ARGV
# window (s), limit, "hit" or "peek", a unique member. Atomic: counting and adding, so N
# processes cannot each let one more in. Returns {events in the window before this call,
# seconds until the oldest leaves it or -1, 1 if counted}.
ATTEMPT = (
    _NOW
    + """
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local frees = oldest and tostring(window - (now - tonumber(oldest))) or '-1'
if ARGV[3] == 'hit' and n < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], tostring(now), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return {n, frees, 1}
end
return {n, frees, 0}
"""
)

# KEYS: the seen set. ARGV: horizon (s), then the display ids held here. Atomic: stamping them
# with Redis's time and reading the ids seen within the horizon, so no host's clock is compared.
SEEN = (
    _NOW
    + """
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], tostring(now), ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 86400)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""
)


class Scripts:
    """The scripts registered on one connection (each is loaded on its first use)."""

    def __init__(self, link: redis.Redis) -> None:
        self.round = link.register_script(ROUND)
        self.init = link.register_script(INIT)
        self.publish = link.register_script(PUBLISH)
        self.release = link.register_script(RELEASE)
        self.drop_token = link.register_script(DROP_TOKEN)
        self.take = link.register_script(TAKE)
        self.pause = link.register_script(PAUSE)
        self.attempt = link.register_script(ATTEMPT)
        self.seen = link.register_script(SEEN)
