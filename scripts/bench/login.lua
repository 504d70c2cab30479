-- POST /auth/token with the password grant for $BENCH_USER / $BENCH_PASSWORD.
dofile("scripts/bench/report.lua")

wrk.method = "POST"
wrk.path = "/auth/token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=password&username=" .. os.getenv("BENCH_USER") .. "&password=" .. os.getenv("BENCH_PASSWORD")

function response(status, headers, body)
   count_status(status)
end
