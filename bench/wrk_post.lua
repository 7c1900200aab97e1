-- wrk script: POST realistic MX job callbacks, each with a job guid never sent before.
--
--   wrk -t2 -c32 -d10s --latency -s bench/wrk_post.lua URL -- RUN_TAG "Basic <base64 user:pass>" [PAUSE_MS]
--
-- PAUSE_MS (optional) is read by bench/wrk_paced.lua, which paces this load.
--
-- RUN_TAG keeps guids unique across wrk runs against one database; within a run the thread id and a
-- per-thread counter do. done() prints one line, "wrk_post: {...}", with the response status counts,
-- so the harness can refuse a result that contains any non-2xx answer.

local threads = {}
local next_thread_id = 1

-- Weighted by listing: a CHALLENGED (2), HALTED (9), DENIED (8) or COMPLETED (6) job queues a
-- handler run, so the ingest path writes the outbox row as well as the event and the current state.
local STATUSES = { 0, 1, 2, 3, 4, 5, 6, 6, 2, 9, 8, 6 }
local STATUS_NAMES = {
  [0] = "INITIATED", [1] = "REQUESTED", [2] = "CHALLENGED", [3] = "RECEIVED",
  [4] = "TRANSFERRED", [5] = "PROCESSED", [6] = "COMPLETED", [7] = "PREVENTED",
  [8] = "DENIED", [9] = "HALTED",
}
local ERRORS = {
  [8] = '"Invalid credentials provided."',
  [9] = '"The institution returned an unexpected response."',
}
local FINISHED = { [6] = true, [8] = true, [9] = true }
local MEMBERS = 2000

function setup(thread)
  thread:set("id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  run_tag = args[1] or "untagged"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[2] then
    wrk.headers["Authorization"] = args[2]
  end
  pause_ms = tonumber(args[3] or "0")
  math.randomseed(os.time() + id * 7919)
  -- A random part as well as the tag: two harnesses started in the same second still differ.
  salt = string.format("%08x", math.random(0, 0x7fffffff))
  base_time = os.time() - 3600
  sent = 0
  statuses = {}
end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

local function job_body(n)
  local status = STATUSES[(n + id) % #STATUSES + 1]
  local member = (n * 31 + id) % MEMBERS
  local created = base_time + (n % 3000)
  local finished = FINISHED[status] and ('"' .. iso(created + 40) .. '"') or "null"
  return string.format(
    '{"job":{"guid":"JOB-%s-%s-%d-%d","member_guid":"MBR-%06d","user_guid":"USR-%06d",'
      .. '"institution_guid":"INS-%03d","status":%d,"status_name":"%s",'
      .. '"is_authenticated":%s,"error_message":%s,"created_at":"%s","started_at":"%s",'
      .. '"updated_at":"%s","finished_at":%s}}',
    run_tag, salt, id, n, member, member, member % 97, status, STATUS_NAMES[status],
    status == 8 and "false" or "true", ERRORS[status] or "null", iso(created), iso(created + 1),
    iso(created + 30), finished
  )
end

function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, job_body(sent))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  local non2xx = 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + count
      if status < 200 or status > 299 then
        non2xx = non2xx + count
      end
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'wrk_post: {"non2xx":%d,"statuses":{%s},"socket_errors":{"connect":%d,"read":%d,'
      .. '"write":%d,"timeout":%d}}\n',
    non2xx, table.concat(parts, ","), e.connect, e.read, e.write, e.timeout
  ))
end
