-- wrk script: bench/wrk_post.lua's callbacks, paced. Each connection waits PAUSE_MS after an answer
-- before its next request, so C connections offer about C * 1000 / (PAUSE_MS + latency) requests a
-- second: a steady load below the peak, for measuring handler lag while ingest runs.
--
--   wrk -t2 -c16 -d10s -s bench/wrk_paced.lua URL -- RUN_TAG "Basic <base64 user:pass>" PAUSE_MS

-- wrk asks whether delay() exists before any thread runs init(), so it is defined here, always.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_post.lua")

function delay()
  return pause_ms
end
