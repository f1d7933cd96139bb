-- wrk script for perfbot's intake benchmark: signed GitHub `push` deliveries.
--
-- Usage: wrk -t2 -c32 -d10s -s intake.lua URL -- SIGNATURE BODY_FILE RUN_ID
--   SIGNATURE  "sha256=<hex>", the HMAC-SHA256 of BODY_FILE's bytes with the
--              webhook secret (the body never changes, so neither does it)
--   BODY_FILE  the payload, sent byte for byte
--   RUN_ID     up to 7 hex digits, distinct per wrk invocation, so deliveries
--              of a warm-up and of the measured run never share an id
--
-- Every request carries a unique X-GitHub-Delivery shaped like a GUID:
--   RUN_ID - thread number - 4xxx - 8xxx - per-thread counter
-- The delivery id is not covered by the signature, as with GitHub.
--
-- response() counts answers per thread; done() adds them up and prints one
-- line starting with "RESULT" that bench/intake/run.sh parses:
--   RESULT requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N
--          p999_us=N max_us=N ok2xx=N s200=N s202=N non2xx=N
--          err_connect=N err_read=N err_write=N err_timeout=N err_status=N
-- (one line; wrapped here). Latencies are wrk's, in microseconds.

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("tid", thread_count)
   table.insert(threads, thread)
end

local prefix, suffix
local counter = 0
local tid = 0
local run_id = 0
-- Per-thread counters, read back by done() through thread:get().
ok2xx, s200, s202, non2xx = 0, 0, 0, 0

function init(args)
   local signature, body_file = args[1], args[2]
   run_id = tonumber(args[3] or "0", 16) or 0
   if signature == nil or body_file == nil then
      error("usage: wrk ... -s intake.lua URL -- SIGNATURE BODY_FILE RUN_ID")
   end
   local f = assert(io.open(body_file, "rb"))
   local body = f:read("*a")
   f:close()
   -- wrk.thread.tid is set by setup() before init() runs.
   tid = wrk.thread:get("tid") or 0
   local path = wrk.path
   local host = wrk.host .. ":" .. wrk.port
   -- The request is prefix .. delivery id .. suffix; only the id varies.
   prefix = "POST " .. path .. " HTTP/1.1\r\n"
      .. "Host: " .. host .. "\r\n"
      .. "User-Agent: GitHub-Hookshot/bench\r\n"
      .. "Accept: */*\r\n"
      .. "Content-Type: application/json\r\n"
      .. "X-GitHub-Event: push\r\n"
      .. "X-GitHub-Hook-ID: 471013296\r\n"
      .. "X-GitHub-Hook-Installation-Target-Type: integration\r\n"
      .. "X-GitHub-Hook-Installation-Target-ID: 1\r\n"
      .. "X-Hub-Signature-256: " .. signature .. "\r\n"
      .. "X-GitHub-Delivery: "
   suffix = "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
end

function request()
   counter = counter + 1
   -- Each field stays below 2^31 so string.format works on any Lua.
   local id = string.format("%08x-%04x-4000-8000-%06x%06x",
                            run_id, tid,
                            math.floor(counter / 0x1000000) % 0x1000000,
                            counter % 0x1000000)
   return prefix .. id .. suffix
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
      if status == 200 then s200 = s200 + 1
      elseif status == 202 then s202 = s202 + 1 end
   else
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local t_ok, t_200, t_202, t_non = 0, 0, 0, 0
   for _, thread in ipairs(threads) do
      t_ok = t_ok + (thread:get("ok2xx") or 0)
      t_200 = t_200 + (thread:get("s200") or 0)
      t_202 = t_202 + (thread:get("s202") or 0)
      t_non = t_non + (thread:get("non2xx") or 0)
   end
   local e = summary.errors
   local rps = 0
   if summary.duration > 0 then
      rps = summary.requests / (summary.duration / 1e6)
   end
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d "
         .. "p99_us=%d p999_us=%d max_us=%d ok2xx=%d s200=%d s202=%d non2xx=%d "
         .. "err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
      summary.requests, summary.duration, rps,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max,
      t_ok, t_200, t_202, t_non,
      e.connect, e.read, e.write, e.timeout, e.status))
end
