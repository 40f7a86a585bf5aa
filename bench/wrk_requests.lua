-- wrk script used by the benchmarks (bench/common.py runs it).
--
--   wrk -t1 -c32 -d10s -s bench/wrk_requests.lua http://127.0.0.1:8000 -- requests.tsv
--
-- requests.tsv has one request per line, METHOD<TAB>PATH<TAB>TOKEN, replayed round-robin with
-- "Authorization: Bearer TOKEN". A POST sends a fresh ticket (the same text as
-- bench/common.py's ticket_body). At the end one line "BENCHJSON {...}" carries the figures.

local list = {}
local position = 0
local counter = 0

local TITLE = "Report export times out (bench %d)"
local DESCRIPTION = "Since this morning the CSV export of the monthly report fails with a "
  .. "timeout when the report has more than ten thousand rows. Steps: open Reports, pick "
  .. "March, click Export. Expected a file; got an error page after 30 seconds. Our Python "
  .. "service logs a PostgreSQL statement timeout. (bench request %d)"

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    local method, path, token = line:match("^(%u+)\t([^\t]+)\t([^\t]*)$")
    if method then
      list[#list + 1] = { method = method, path = path, token = token }
    end
  end
  file:close()
  assert(#list > 0, "no requests in " .. args[1])
end

function request()
  position = position % #list + 1
  local r = list[position]
  local headers = { ["Accept"] = "application/json" }
  if r.token ~= "" then
    headers["Authorization"] = "Bearer " .. r.token
  end
  local body = nil
  if r.method == "POST" then
    counter = counter + 1
    headers["Content-Type"] = "application/json"
    body = string.format('{"title":"' .. TITLE .. '","description":"' .. DESCRIPTION .. '"}',
      counter, counter)
  end
  return wrk.format(r.method, r.path, headers, body)
end

function done(summary, latency, _requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"tool":"wrk","requests":%d,"duration_s":%.3f,"errors":%d,"errors_status":%d,'
      .. '"mean_ms":%.3f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout + e.status, e.status,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
