-- POST /users with a fresh username each time (run tag, thread id and a counter).
dofile("scripts/bench/report.lua")

local counter = 0
local tag = os.getenv("BENCH_TAG") or "r"

function request()
   counter = counter + 1
   local body = string.format('{"username": "%s%d_%d", "password": "bench passphrase %d"}', tag, id, counter, counter)
   return wrk.format("POST", "/users", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
   count_status(status)
end
