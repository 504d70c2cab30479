-- POST /auth/refresh, chained: each thread (one connection each: run with -c equal to -t)
-- starts from its own refresh token (line `id` of $BENCH_TOKENS_FILE) and always presents the
-- token its last response returned.
dofile("scripts/bench/report.lua")

local current

function init(args)
   local n = 0
   for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
      n = n + 1
      if n == id then current = line end
   end
end

function request()
   return wrk.format("POST", "/auth/refresh", {["Content-Type"] = "application/json"},
      '{"refresh_token": "' .. current .. '"}')
end

function response(status, headers, body)
   count_status(status)
   local token = string.match(body, '"refresh_token":"([^"]+)"')
   if token then current = token end
end
