-- GET of wrk's URL, with `Authorization: Bearer $BENCH_TOKEN` when set.
dofile("scripts/bench/report.lua")

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end

function response(status, headers, body)
   count_status(status)
end
