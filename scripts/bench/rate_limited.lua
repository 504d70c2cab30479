-- POST /auth/refresh with an unknown token (answered 400 invalid_grant after one indexed lookup):
-- the cheapest request the rate limit covers. With BENCH_CLIENTS=N each request comes from one
-- of N client addresses (X-Forwarded-For; run the server with TRUST_PROXY_HEADERS=true), so the
-- shared budget is spread over N keys; unset: every request is the same client (one hot key).
dofile("scripts/bench/report.lua")

local clients = tonumber(os.getenv("BENCH_CLIENTS") or "0")

function init(args)
   math.randomseed(os.time() + id * 7919)
end

function request()
   local headers = {["Content-Type"] = "application/json"}
   if clients > 0 then
      local n = math.random(clients)
      headers["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
   end
   return wrk.format("POST", "/auth/refresh", headers, '{"refresh_token": "not-a-token"}')
end

function response(status, headers, body)
   count_status(status)
end
