-- POST of wrk's URL with the form body $BENCH_BODY and, when set, `Authorization: $BENCH_AUTH`
-- (e.g. `Basic ...` for a confidential client).
dofile("scripts/bench/report.lua")

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
   wrk.headers["Authorization"] = auth
end

function response(status, headers, body)
   count_status(status)
end
