-- wrk script for `storylake bench api`: many app clients, each pausing an exponentially distributed think time
-- before every request, so that the arrivals of all connections add up to a Poisson stream at the offered rate
-- (hey's -q paces every connection with tickers that start together, which sends synchronised bursts instead).
--
--   wrk -c C -d 20s --latency -s think_time.lua URL -- MEAN_MS [BODY_FILE]
--
-- MEAN_MS = C / offered rate, in milliseconds. With BODY_FILE, each request is a POST of that JSON file.
local mean_ms = 0

function init(args)
  mean_ms = tonumber(args[1]) or 0
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  if args[2] then
    local f = assert(io.open(args[2], "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    wrk.headers["Content-Type"] = "application/json"
    f:close()
  end
end

function delay()
  return math.floor(-math.log(1 - math.random()) * mean_ms)
end
